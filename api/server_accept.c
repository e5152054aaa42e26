/* server_accept.c -- the listening socket and the thread that accepts on it.
 *
 * The server, not libmicrohttpd, owns its listening socket: libmicrohttpd
 * runs without one (MHD_USE_NO_LISTEN_SOCKET) and gets each accepted
 * connection through MHD_add_connection(), which queues it to one of its
 * threads.  Why: the only way libmicrohttpd 0.9.75 offers to stop accepting
 * while connections finish, MHD_quiesce_daemon(), races its own threads.  It
 * marks each epoll worker quiesced and then, from the calling thread and
 * without a lock, deletes the listening socket from that worker's epoll set;
 * a worker woken meanwhile sees the mark and deletes it itself, and whichever
 * comes second gets ENOENT -- for the quiescing thread a panic (daemon.c:5531
 * "Failed to remove listen FD from epoll set.", then abort(): SIGTERM ended
 * with exit 134), for the worker one too in a narrower window (:4976).  Here
 * a stop joins the accept thread and closes the socket: from then on a new
 * connection is refused (RST to its SYN), which a load balancer retries on
 * another server whatever the method -- unlike a connection accepted and then
 * closed, where a request may already have been sent.
 *
 * The connection limit (max-connections) is kept here, exactly, so that past
 * it connections wait unaccepted in the kernel's queue as before: the thread
 * stops accepting while open + pending >= max-connections, where open counts
 * connections libmicrohttpd started and has not closed (its notify callback)
 * and pending those handed over and not started yet.  libmicrohttpd's own
 * limit is set so that it never binds (its per-thread share would close a
 * connection queued to a thread that has its share while others have room);
 * it may still drop a queued connection without telling (it could not
 * allocate the connection's memory): a pending entry whose socket is gone is
 * found by its inode when the limit is reached, so no place in the limit is
 * lost.  The per-address limit stays libmicrohttpd's (MHD_add_connection
 * refuses and closes at once).
 *
 * (microhttpd.h calls MHD_USE_NO_LISTEN_SOCKET incompatible with a thread
 * pool; 0.9.75's daemon.c starts the pool all the same and hands added
 * connections to its threads, and its own test suite runs that combination
 * with epoll: test_add_conn_nolisten.) */
#include "api_int.h"

#include <assert.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* How long the thread waits for room (or descriptors) before it looks again:
 * a close wakes it sooner. */
#define ROOM_WAIT_MS 200

/* A connection handed to libmicrohttpd and not started yet: its socket's
 * identity, so a descriptor number reused by another file is told apart. */
typedef struct pending {
    dev_t dev;
    ino_t ino; /* 0: no connection pending on this descriptor */
} pending;

struct api__acceptor {
    int lfd;  /* the listening socket; -1 once closed */
    int wake; /* eventfd: a stop, or room after a close (while waiting is set) */
    int64_t max;
    api_server *srv; /* set by api__acceptor_start() */
    pthread_t thread;
    int started;
    _Atomic int quit;
    _Atomic int waiting; /* the thread waits for room: a close writes wake */

    pthread_mutex_t lock; /* open, pend, npending */
    int64_t open;
    pending *pend; /* indexed by descriptor, pend_cap entries */
    size_t pend_cap, npending;
};

sl_status api__acceptor_open(const char *where, const struct sockaddr *addr, socklen_t addrlen,
                             int64_t max, api__acceptor **out, uint16_t *port, sl_error *err)
{
    sl_status rc = SL_OK;
    api__acceptor *a = calloc(1, sizeof *a);
    struct sockaddr_storage bound;
    socklen_t blen = sizeof bound;
    int on = 1;
    if (!a) {
        rc = sl_error_set(err, SL_ENOMEM, "out of memory opening the listening socket");
        goto out;
    }
    a->lfd = a->wake = -1;
    a->max = max;
    pthread_mutex_init(&a->lock, NULL);
    a->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    a->lfd = socket(addr->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (a->wake < 0 || a->lfd < 0) {
        rc = sl_error_set_at(err, SL_EIO, "listen", -1, "cannot serve on %s: %s", where,
                             strerror(errno));
        goto out;
    }
    /* As libmicrohttpd did: a restart binds again while old connections of
     * the previous process linger in TIME_WAIT; IPv6 only for an IPv6
     * address. */
    setsockopt(a->lfd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    if (addr->sa_family == AF_INET6)
        setsockopt(a->lfd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on);
    if (bind(a->lfd, addr, addrlen) != 0 || listen(a->lfd, SOMAXCONN) != 0 ||
        getsockname(a->lfd, (struct sockaddr *)&bound, &blen) != 0) {
        rc = sl_error_set_at(err, SL_EIO, "listen", -1, "cannot serve on %s: %s", where,
                             strerror(errno));
        goto out;
    }
    *port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                              : ((struct sockaddr_in *)&bound)->sin_port);
    *out = a;
    a = NULL;
out:
    api__acceptor_free(&a);
    return rc;
}

/* Drops pending entries whose socket libmicrohttpd closed without starting
 * it: the descriptor is closed, or is now another file.  Under a->lock. */
static void forget_dropped(api__acceptor *a)
{
    for (size_t fd = 0; fd < a->pend_cap && a->npending > 0; fd++) {
        struct stat sb;
        if (a->pend[fd].ino != 0 && (fstat((int)fd, &sb) != 0 || sb.st_ino != a->pend[fd].ino ||
                                     sb.st_dev != a->pend[fd].dev)) {
            a->pend[fd].ino = 0;
            a->npending--;
        }
    }
}

/* Whether one more connection fits under max-connections. */
static int has_room(api__acceptor *a)
{
    pthread_mutex_lock(&a->lock);
    if (a->open + (int64_t)a->npending >= a->max && a->npending > 0)
        forget_dropped(a);
    int room = a->open + (int64_t)a->npending < a->max;
    pthread_mutex_unlock(&a->lock);
    return room;
}

/* Waits up to ROOM_WAIT_MS for a close (or a stop).  waiting is set before
 * has_room() is asked again, so a close between the two is not missed. */
static void wait_room(api__acceptor *a, int need_room)
{
    atomic_store(&a->waiting, 1);
    if (!need_room || !has_room(a)) {
        struct pollfd p = {a->wake, POLLIN, 0};
        uint64_t v;
        if (poll(&p, 1, ROOM_WAIT_MS) > 0 && read(a->wake, &v, sizeof v) < 0)
            (void)0; /* drained, or raced with another reader: nothing lost */
    }
    atomic_store(&a->waiting, 0);
}

/* Records fd (accepted, with identity sb) as pending; 0, or -1 without memory. */
static int add_pending(api__acceptor *a, int fd, const struct stat *sb)
{
    int rc = 0;
    pthread_mutex_lock(&a->lock);
    if ((size_t)fd >= a->pend_cap) {
        size_t cap = a->pend_cap ? a->pend_cap : 1024;
        while (cap <= (size_t)fd)
            cap *= 2;
        pending *p = realloc(a->pend, cap * sizeof *p);
        if (!p) {
            rc = -1;
            goto out;
        }
        memset(p + a->pend_cap, 0, (cap - a->pend_cap) * sizeof *p);
        a->pend = p;
        a->pend_cap = cap;
    }
    /* A number accept() returns is free: an entry still there is a
     * connection libmicrohttpd dropped without starting it. */
    if (a->pend[fd].ino != 0)
        a->npending--;
    a->pend[fd].dev = sb->st_dev;
    a->pend[fd].ino = sb->st_ino;
    a->npending++;
out:
    pthread_mutex_unlock(&a->lock);
    return rc;
}

static void drop_pending(api__acceptor *a, int fd)
{
    pthread_mutex_lock(&a->lock);
    if ((size_t)fd < a->pend_cap && a->pend[fd].ino != 0) {
        a->pend[fd].ino = 0;
        a->npending--;
    }
    pthread_mutex_unlock(&a->lock);
}

/* Takes one connection from the queue and hands it over.  A descriptor or
 * memory shortage leaves the connection queued and waits for a close. */
static void accept_one(api__acceptor *a)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    struct stat sb;
    int fd = accept4(a->lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (e == EAGAIN || e == EWOULDBLOCK || e == EINTR || e == ECONNABORTED || e == EPROTO)
            goto out; /* nothing queued, or the client gave up first */
        api__server_log(a->srv, "cannot accept a connection (%s); trying again when one closes",
                        strerror(e));
        wait_room(a, 0);
        goto out;
    }
    if (fstat(fd, &sb) != 0 || add_pending(a, fd, &sb) != 0) {
        api__server_log(a->srv, "out of memory taking a connection; closed");
        close(fd);
        goto out;
    }
    /* libmicrohttpd owns fd from here, and has closed it on MHD_NO (the
     * per-address limit, no memory). */
    if (MHD_add_connection(a->srv->mhd, fd, (struct sockaddr *)&ss, sl) != MHD_YES)
        drop_pending(a, fd);
out:
    return;
}

static void *accept_main(void *arg)
{
    api__acceptor *a = arg;
    while (!atomic_load(&a->quit)) {
        if (!has_room(a)) {
            wait_room(a, 1);
            continue;
        }
        struct pollfd p[2] = {{a->lfd, POLLIN, 0}, {a->wake, POLLIN, 0}};
        if (poll(p, 2, -1) < 0) {
            if (errno != EINTR)
                wait_room(a, 0); /* cannot happen with valid descriptors; do not spin */
            continue;
        }
        if (p[1].revents) {
            uint64_t v;
            if (read(a->wake, &v, sizeof v) < 0)
                (void)0; /* a stop: the loop's test sees quit */
        }
        if ((p[0].revents & POLLIN) && !atomic_load(&a->quit))
            accept_one(a);
    }
    return NULL;
}

sl_status api__acceptor_start(api__acceptor *a, api_server *srv, sl_error *err)
{
    sl_status rc = SL_OK;
    assert(srv->mhd && !a->started);
    a->srv = srv;
    if (pthread_create(&a->thread, NULL, accept_main, a) != 0) {
        rc = sl_error_set(err, SL_EINTERNAL, "cannot start the accepting thread");
        goto out;
    }
    a->started = 1;
out:
    return rc;
}

void api__acceptor_started(api__acceptor *a, int fd)
{
    pthread_mutex_lock(&a->lock);
    if (fd >= 0 && (size_t)fd < a->pend_cap && a->pend[fd].ino != 0) {
        a->pend[fd].ino = 0;
        a->npending--;
    }
    a->open++;
    pthread_mutex_unlock(&a->lock);
}

void api__acceptor_closed(api__acceptor *a)
{
    uint64_t one = 1;
    pthread_mutex_lock(&a->lock);
    a->open--;
    pthread_mutex_unlock(&a->lock);
    if (atomic_load(&a->waiting) && write(a->wake, &one, sizeof one) < 0)
        (void)0; /* the counter is full: the thread is woken already */
}

void api__acceptor_stop(api__acceptor *a)
{
    uint64_t one = 1;
    if (!a)
        goto out;
    if (a->started) {
        atomic_store(&a->quit, 1);
        if (write(a->wake, &one, sizeof one) < 0)
            (void)0; /* full: the thread is woken already */
        pthread_join(a->thread, NULL);
        a->started = 0;
    }
    /* From here a new connection is refused; one the kernel had queued but
     * the thread had not taken is reset (nothing of it was read). */
    if (a->lfd >= 0)
        close(a->lfd);
    a->lfd = -1;
out:
    return;
}

void api__acceptor_free(api__acceptor **ap)
{
    api__acceptor *a = ap ? *ap : NULL;
    if (!a)
        goto out;
    api__acceptor_stop(a);
    if (a->wake >= 0)
        close(a->wake);
    pthread_mutex_destroy(&a->lock);
    free(a->pend);
    free(a);
    *ap = NULL;
out:
    return;
}
