/* Load generator of the sockcomp benchmark suite: one process, epoll, no threads.
 *
 *   loadgen ping HOST PORT N SIZE                 sequential round trips on one connection
 *   loadgen bulk HOST PORT BYTES echo|sink        stream BYTES; echo: read them all back
 *   loadgen conc HOST PORT CLIENTS MSGS SIZE      CLIENTS connections, each MSGS round trips
 *   loadgen conn HOST PORT COUNT INFLIGHT SIZE    connect, one echo, half-close, wait FIN, close
 *   loadgen idle HOST PORT IDLE ACTIVE MSGS SIZE SERVERPID
 *                                                 IDLE connections (one echo each, then idle),
 *                                                 server RSS before/after, then ACTIVE clients
 *                                                 doing MSGS round trips, with latencies
 *
 * Prints one JSON object on stdout. Exit status 0 on success, 1 on any failure (message on
 * stderr). New connections take their source address in turn from 127.0.1.1..127.0.200.250
 * (IP_BIND_ADDRESS_NO_PORT), so TIME_WAIT never exhausts the ephemeral ports.
 * Build: gcc -O2 -o loadgen loadgen.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

static struct sockaddr_in dst;
static unsigned src_counter;
static int epfd;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void die(const char *what) {
    fprintf(stderr, "loadgen: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void fail(const char *what) {
    fprintf(stderr, "loadgen: %s\n", what);
    exit(1);
}

static void raise_nofile(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* A new socket bound to the next source address; nonblocking when asked. Connect started. */
static int open_conn(int nonblock) {
    int fd = socket(AF_INET, SOCK_STREAM | (nonblock ? SOCK_NONBLOCK : 0), 0);
    if (fd < 0) die("socket");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    struct sockaddr_in src = {0};
    src.sin_family = AF_INET;
    unsigned k = src_counter++ % (200 * 250);
    src.sin_addr.s_addr = htonl((127u << 24) | ((1 + k / 250) << 8) | (1 + k % 250));
    if (bind(fd, (struct sockaddr *)&src, sizeof src) < 0) die("bind");
    if (connect(fd, (struct sockaddr *)&dst, sizeof dst) < 0 && errno != EINPROGRESS)
        die("connect");
    return fd;
}

static void ep_ctl(int op, int fd, uint32_t ev, uint64_t data) {
    struct epoll_event e = {.events = ev, .data.u64 = data};
    if (epoll_ctl(epfd, op, fd, &e) < 0) die("epoll_ctl");
}

static void write_all(int fd, const char *buf, size_t n) {
    while (n) {
        ssize_t w = write(fd, buf, n);
        if (w < 0) { if (errno == EINTR) continue; die("write"); }
        buf += w; n -= (size_t)w;
    }
}

static void read_exact(int fd, char *buf, size_t n) {
    while (n) {
        ssize_t r = read(fd, buf, n);
        if (r < 0) { if (errno == EINTR) continue; die("read"); }
        if (r == 0) fail("server closed early");
        buf += r; n -= (size_t)r;
    }
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* ----------------------------------------------------------------------------- ping */
static void run_ping(long n, int size) {
    char *msg = malloc(size), *buf = malloc(size);
    memset(msg, 'p', size);
    int fd = open_conn(0);
    long warm = n / 10 < 200 ? 200 : n / 10;
    for (long i = 0; i < warm; i++) { write_all(fd, msg, size); read_exact(fd, buf, size); }
    double t0 = now();
    for (long i = 0; i < n; i++) { write_all(fd, msg, size); read_exact(fd, buf, size); }
    double dt = now() - t0;
    close(fd);
    printf("{\"value\": %.1f, \"unit\": \"rt/s\", \"seconds\": %.4f, \"n\": %ld, "
           "\"us_per_rt\": %.2f}\n", n / dt, dt, n, dt / n * 1e6);
}

/* ----------------------------------------------------------------------------- bulk */
static void run_bulk(long long total, int echo) {
    const size_t chunk = 64 * 1024;
    char *out = malloc(chunk), *in = malloc(256 * 1024);
    memset(out, 'b', chunk);
    int fd = open_conn(1);
    epfd = epoll_create1(0);
    ep_ctl(EPOLL_CTL_ADD, fd, EPOLLIN | EPOLLOUT, 0);
    long long sent = 0, got = 0;
    int wr_shut = 0, eof = 0;
    double t0 = now();
    struct epoll_event evs[4];
    while (echo ? got < total : !eof) {
        int n = epoll_wait(epfd, evs, 4, 30000);
        if (n < 0) { if (errno == EINTR) continue; die("epoll_wait"); }
        if (n == 0) fail("bulk: timeout");
        uint32_t ev = evs[0].events;
        if ((ev & EPOLLOUT) && sent < total) {
            for (;;) {
                size_t want = total - sent < (long long)chunk ? (size_t)(total - sent) : chunk;
                ssize_t w = send(fd, out, want, MSG_NOSIGNAL);
                if (w < 0) { if (errno == EAGAIN) break; die("send"); }
                sent += w;
                if (sent >= total) break;
            }
            if (sent >= total) {
                if (!echo && !wr_shut) { shutdown(fd, SHUT_WR); wr_shut = 1; }
                ep_ctl(EPOLL_CTL_MOD, fd, EPOLLIN, 0);
            }
        }
        if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
            for (;;) {
                ssize_t r = recv(fd, in, 256 * 1024, 0);
                if (r < 0) { if (errno == EAGAIN) break; die("recv"); }
                if (r == 0) { eof = 1; break; }
                got += r;
            }
            if (eof && echo && got < total) fail("bulk: server closed early");
        }
    }
    double dt = now() - t0;
    close(fd);
    printf("{\"value\": %.1f, \"unit\": \"MB/s\", \"seconds\": %.4f, \"bytes\": %lld}\n",
           total / dt / 1e6, dt, total);
}

/* --------------------------------------------------------------- round-trip clients */
struct client {
    int fd;
    int got;          /* bytes of the current echo received */
    long left;        /* round trips still to do */
    double sent_at;
};

static char *g_msg, *g_buf;
static int g_size;

/* Drive `n` connected clients through `msgs` round trips each; latencies optional. */
static double drive(struct client *cl, int n, long msgs, double *lat, long *nlat) {
    int done = 0;
    for (int i = 0; i < n; i++) {
        cl[i].left = msgs;
        cl[i].got = 0;
        ep_ctl(EPOLL_CTL_ADD, cl[i].fd, EPOLLIN, (uint64_t)i);
    }
    double t0 = now();
    for (int i = 0; i < n; i++) {
        cl[i].sent_at = now();
        write_all(cl[i].fd, g_msg, g_size);
    }
    struct epoll_event evs[256];
    while (done < n) {
        int k = epoll_wait(epfd, evs, 256, 30000);
        if (k < 0) { if (errno == EINTR) continue; die("epoll_wait"); }
        if (k == 0) fail("round trips: timeout");
        for (int j = 0; j < k; j++) {
            struct client *c = &cl[evs[j].data.u64];
            ssize_t r = recv(c->fd, g_buf, g_size - c->got, 0);
            if (r < 0) { if (errno == EAGAIN) continue; die("recv"); }
            if (r == 0) fail("round trips: server closed early");
            c->got += r;
            if (c->got < g_size) continue;
            c->got = 0;
            double t = now();
            if (lat) lat[(*nlat)++] = t - c->sent_at;
            if (--c->left == 0) {
                done++;
                ep_ctl(EPOLL_CTL_DEL, c->fd, 0, 0);
                continue;
            }
            c->sent_at = t;
            write_all(c->fd, g_msg, g_size);  /* 64 bytes into an empty buffer: never blocks */
        }
    }
    return now() - t0;
}

/* Open `n` connections, `inflight` at a time; each does one echo and stays open. */
static void open_many(struct client *cl, int n, int inflight) {
    int opened = 0, ready = 0, pending = 0;
    struct epoll_event evs[256];
    while (ready < n) {
        while (pending < inflight && opened < n) {
            cl[opened].fd = open_conn(1);
            cl[opened].got = -1;  /* -1: connecting */
            ep_ctl(EPOLL_CTL_ADD, cl[opened].fd, EPOLLOUT, (uint64_t)opened);
            opened++; pending++;
        }
        int k = epoll_wait(epfd, evs, 256, 30000);
        if (k < 0) { if (errno == EINTR) continue; die("epoll_wait"); }
        if (k == 0) fail("open: timeout");
        for (int j = 0; j < k; j++) {
            struct client *c = &cl[evs[j].data.u64];
            if (c->got < 0) {
                int err = 0; socklen_t len = sizeof err;
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
                if (err) { errno = err; die("connect"); }
                c->got = 0;
                write_all(c->fd, g_msg, g_size);
                ep_ctl(EPOLL_CTL_MOD, c->fd, EPOLLIN, evs[j].data.u64);
                continue;
            }
            ssize_t r = recv(c->fd, g_buf, g_size - c->got, 0);
            if (r < 0) { if (errno == EAGAIN) continue; die("recv"); }
            if (r == 0) fail("open: server closed");
            c->got += r;
            if (c->got == g_size) {
                c->got = 0;
                ep_ctl(EPOLL_CTL_DEL, c->fd, 0, 0);
                ready++; pending--;
            }
        }
    }
}

static void run_conc(int clients, long msgs) {
    struct client *cl = calloc(clients, sizeof *cl);
    epfd = epoll_create1(0);
    open_many(cl, clients, 64);
    double dt = drive(cl, clients, msgs, NULL, NULL);
    for (int i = 0; i < clients; i++) close(cl[i].fd);
    printf("{\"value\": %.1f, \"unit\": \"msg/s\", \"seconds\": %.4f, \"clients\": %d, "
           "\"msgs\": %ld}\n", clients * msgs / dt, dt, clients, msgs);
}

/* ----------------------------------------------------------------------------- conn */
static void run_conn(long count, int inflight) {
    /* state per slot: 0 connecting, 1 awaiting echo, 2 awaiting FIN */
    int *fd = calloc(inflight, sizeof *fd), *st = calloc(inflight, sizeof *st);
    int *got = calloc(inflight, sizeof *got);
    epfd = epoll_create1(0);
    long started = 0, finished = 0;
    struct epoll_event evs[256];
    double t0 = now();
    for (int i = 0; i < inflight && started < count; i++, started++) {
        fd[i] = open_conn(1); st[i] = 0; got[i] = 0;
        ep_ctl(EPOLL_CTL_ADD, fd[i], EPOLLOUT, (uint64_t)i);
    }
    while (finished < count) {
        int k = epoll_wait(epfd, evs, 256, 30000);
        if (k < 0) { if (errno == EINTR) continue; die("epoll_wait"); }
        if (k == 0) fail("conn: timeout");
        for (int j = 0; j < k; j++) {
            int i = (int)evs[j].data.u64;
            if (st[i] == 0) {
                int err = 0; socklen_t len = sizeof err;
                getsockopt(fd[i], SOL_SOCKET, SO_ERROR, &err, &len);
                if (err) { errno = err; die("connect"); }
                write_all(fd[i], g_msg, g_size);
                st[i] = 1;
                ep_ctl(EPOLL_CTL_MOD, fd[i], EPOLLIN, (uint64_t)i);
                continue;
            }
            ssize_t r = recv(fd[i], g_buf, g_size, 0);
            if (r < 0) { if (errno == EAGAIN) continue; die("recv"); }
            if (st[i] == 1) {
                if (r == 0) fail("conn: server closed early");
                got[i] += r;
                if (got[i] >= g_size) { shutdown(fd[i], SHUT_WR); st[i] = 2; }
                continue;
            }
            if (r > 0) continue;
            close(fd[i]);  /* server's FIN arrived: the connection is over on both sides */
            finished++;
            if (started < count) {
                started++;
                fd[i] = open_conn(1); st[i] = 0; got[i] = 0;
                ep_ctl(EPOLL_CTL_ADD, fd[i], EPOLLOUT, (uint64_t)i);
            }
        }
    }
    double dt = now() - t0;
    printf("{\"value\": %.1f, \"unit\": \"conn/s\", \"seconds\": %.4f, \"count\": %ld, "
           "\"inflight\": %d}\n", count / dt, dt, count, inflight);
}

/* ----------------------------------------------------------------------------- idle */
static long rss_kb(int pid) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f) die("open /proc/PID/status");
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) kb = atol(line + 6);
    fclose(f);
    return kb;
}

static void settle(void) {
    struct timespec ts = {0, 500 * 1000 * 1000};
    nanosleep(&ts, NULL);
}

static void run_idle(int idle, int active, long msgs, int pid) {
    epfd = epoll_create1(0);
    /* warm the server up (first-connection imports and allocations are not per connection) */
    struct client warm[8];
    open_many(warm, 8, 8);
    drive(warm, 8, 20, NULL, NULL);
    for (int i = 0; i < 8; i++) close(warm[i].fd);
    settle();
    long before = rss_kb(pid);
    struct client *cl = calloc(idle + active, sizeof *cl);
    double t0 = now();
    open_many(cl, idle, 256);
    double open_s = now() - t0;
    settle();
    long after = rss_kb(pid);
    open_many(cl + idle, active, 64);
    double *lat = malloc(sizeof(double) * active * msgs);
    long nlat = 0;
    double dt = drive(cl + idle, active, msgs, lat, &nlat);
    long after_active = rss_kb(pid);
    qsort(lat, nlat, sizeof *lat, cmp_double);
    double p50 = lat[nlat / 2] * 1e6, p99 = lat[(long)(nlat * 0.99)] * 1e6;
    for (int i = 0; i < idle + active; i++) close(cl[i].fd);
    printf("{\"value\": %.2f, \"unit\": \"KB/conn\", \"rss_before_kb\": %ld, "
           "\"rss_idle_kb\": %ld, \"rss_active_kb\": %ld, \"idle\": %d, \"open_s\": %.3f, "
           "\"active\": %d, \"msgs\": %ld, \"active_msg_per_s\": %.1f, \"p50_us\": %.1f, "
           "\"p99_us\": %.1f}\n",
           (double)(after - before) / idle, before, after, after_active, idle, open_s,
           active, msgs, active * msgs / dt, p50, p99);
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: loadgen ping|bulk|conc|conn|idle HOST PORT ...\n");
        return 2;
    }
    raise_nofile();
    dst.sin_family = AF_INET;
    dst.sin_port = htons(atoi(argv[3]));
    if (inet_pton(AF_INET, argv[2], &dst.sin_addr) != 1) fail("bad HOST");
    const char *mode = argv[1];
    g_size = 64;
    if (!strcmp(mode, "ping") && argc == 6) {
        run_ping(atol(argv[4]), atoi(argv[5]));
    } else if (!strcmp(mode, "bulk") && argc == 6) {
        run_bulk(atoll(argv[4]), !strcmp(argv[5], "echo"));
    } else if (!strcmp(mode, "conc") && argc == 7) {
        g_size = atoi(argv[6]);
        g_msg = malloc(g_size); g_buf = malloc(g_size); memset(g_msg, 'c', g_size);
        run_conc(atoi(argv[4]), atol(argv[5]));
    } else if (!strcmp(mode, "conn") && argc == 7) {
        g_size = atoi(argv[6]);
        g_msg = malloc(g_size); g_buf = malloc(g_size); memset(g_msg, 'k', g_size);
        run_conn(atol(argv[4]), atoi(argv[5]));
    } else if (!strcmp(mode, "idle") && argc == 9) {
        g_size = atoi(argv[7]);
        g_msg = malloc(g_size); g_buf = malloc(g_size); memset(g_msg, 'i', g_size);
        run_idle(atoi(argv[4]), atoi(argv[5]), atol(argv[6]), atoi(argv[8]));
    } else {
        fprintf(stderr, "loadgen: bad arguments for %s\n", mode);
        return 2;
    }
    return 0;
}
