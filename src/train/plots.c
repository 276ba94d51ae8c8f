/* Loss-curve PNGs at the end of each stage (log.plots): runs
 * tools/plot_run.sh RUN_DIR STAGE (gnuplot; the tool documents the panels)
 * as a child process and waits for it.  The tool is looked up next to the
 * program: <dir of secap-train>/../tools/plot_run.sh (bin/) or
 * ../../tools/plot_run.sh (bin/asan/), or $SECAP_PLOT_TOOL.  Without gnuplot
 * on $PATH, or without the tool, the run says so once and goes on: the PNGs
 * are a convenience, never a reason to stop training.  The child gets no
 * part of the training state, so a run with plots trains exactly as one
 * without. */
#include "train_internal.h"

#include "secap/base.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static int on_path(const char *prog)
{
    const char *p = getenv("PATH");
    if (!p) return 0;
    char buf[4300];
    while (*p) {
        const char *c = strchr(p, ':');
        size_t n = c ? (size_t)(c - p) : strlen(p);
        snprintf(buf, sizeof buf, "%.*s/%s", (int)n, p, prog);
        if (n && access(buf, X_OK) == 0) return 1;
        p += n + (c != NULL);
    }
    return 0;
}

static int find_tool(char *out, size_t cap)
{
    const char *env = getenv("SECAP_PLOT_TOOL");
    if (env && *env) {
        snprintf(out, cap, "%s", env);
        return access(out, X_OK) == 0;
    }
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) return 0;
    self[n] = 0;
    const char *dir = dirname(self);
    snprintf(out, cap, "%s/../tools/plot_run.sh", dir);
    if (access(out, X_OK) == 0) return 1;
    snprintf(out, cap, "%s/../../tools/plot_run.sh", dir);
    return access(out, X_OK) == 0;
}

void secap_train_plot_stage(trainer *tr, const char *stage)
{
    static int warned;
    if (!tr->cfg.log.plots) return;
    char tool[4200];
    if (!on_path("gnuplot") || !find_tool(tool, sizeof tool)) {
        if (!warned++)
            fprintf(stderr, "%ssecap-train: no loss-curve PNGs: %s (hint: tools/deps.sh demo installs gnuplot-nox; "
                    "tools/plot_run.sh %s draws them for any run directory later)\n", tr->bar ? "\n" : "",
                    on_path("gnuplot") ? "tools/plot_run.sh not found next to the program" : "gnuplot is not installed",
                    tr->cfg.train.out_dir);
        return;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    char *argv[] = { tool, tr->cfg.train.out_dir, (char *)stage, NULL };
    pid_t pid;
    int e = posix_spawn(&pid, tool, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    int st = 0;
    if (e == 0) {
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    }
    if (e != 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fprintf(stderr, "%ssecap-train: warning: %s %s %s failed (%s); training goes on\n", tr->bar ? "\n" : "", tool,
                tr->cfg.train.out_dir, stage, e ? strerror(e) : "see its message above");
    else
        fprintf(stderr, "%ssecap-train: stage %s: loss curves in %s/plots/%s.png\n", tr->bar ? "\n" : "", stage,
                tr->cfg.train.out_dir, stage);
}
