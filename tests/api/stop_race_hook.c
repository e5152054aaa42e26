/* stop_race_hook.c -- api_stop_test's hook, preloaded (LD_PRELOAD) into the
 * server it starts.  It wraps epoll_ctl(): when the process's main thread
 * (the one that runs the stop) removes a listening socket from an epoll set,
 * the removal waits 50 ms first.  That is what libmicrohttpd 0.9.75's
 * MHD_quiesce_daemon() does for each of its threads' epoll sets, right after
 * marking the thread quiesced and without a lock; the thread, woken by a
 * connection meanwhile, removes the socket itself, and the late removal
 * fails (ENOENT) into libmicrohttpd's panic, abort() (exit 134).  Without the
 * hook the window is a few instructions wide and the abort rare (about one
 * stop in 25 of a loaded test run); with it, nearly every stop under load.
 * A server that never asks libmicrohttpd to quiesce never meets the wait.
 * It says it is loaded on stderr, so the test knows it ran. */
#include <dlfcn.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef int (*epoll_ctl_fn)(int, int, int, struct epoll_event *);

__attribute__((constructor)) static void announce(void)
{
    fprintf(stderr, "stop_race_hook: loaded\n");
}

int epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
    static epoll_ctl_fn real;
    if (!real)
        real = (epoll_ctl_fn)dlsym(RTLD_NEXT, "epoll_ctl");
    if (op == EPOLL_CTL_DEL && gettid() == getpid()) {
        int listening = 0;
        socklen_t len = sizeof listening;
        if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) == 0 && listening) {
            struct timespec ts = {0, 50 * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    return real(epfd, op, fd, ev);
}
