/*
 * The benchmarks' load generator and helper servers, in C with epoll, so
 * that the measuring side costs far less CPU than the server it measures
 * (`deno task bench` compiles it with cc when a compiler is there).
 *
 *   loadgen poll PORT SECONDS < sessions   K clients (one per "id secret" line on
 *                                          stdin), each looping: connect,
 *                                          "RESUME id secret ack" + 16 bytes of
 *                                          input, read the reply and exactly the
 *                                          pending bytes, close.
 *   loadgen echo PORT SECONDS [BOUND_MS] < sessions
 *                                          one attached streaming client per
 *                                          line, each sending 64 bytes and
 *                                          waiting for their echo, in a loop;
 *                                          a client that waited longer than
 *                                          BOUND_MS (default 1000) for one
 *                                          echo, or is still waiting that
 *                                          long at the end, counts as starved.
 *   loadgen fake PORT                      a stand-in proxy answering every
 *                                          hello at once (to measure loadgen alone).
 *   loadgen echod PORT                     an echo destination.
 *
 * poll and echo print one JSON line: {"count":N,"seconds":S,"p50_ms":..,"p99_ms":..,
 * "p999_ms":..,"max_ms":..}; echo adds "starved":N (clients, see above) and
 * "idle":N (clients that got no echo at all).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_EVENTS 1024
#define MAX_CLIENTS 20000
#define MAX_SAMPLES 20000000

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void die(const char *what) {
  perror(what);
  exit(1);
}

static int listen_on(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0) die("bind");
  if (listen(fd, 4096) < 0) die("listen");
  return fd;
}

static int connect_to(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (fd < 0) die("socket");
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0 && errno != EINPROGRESS) die("connect");
  return fd;
}

static int compare(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double *samples;
static long sample_count;

static double quantile(double q) {
  return sample_count ? samples[(long)(q * (sample_count - 1))] : 0;
}

/* Prints the JSON line; `extra` (starting with a comma, or empty) goes before the brace. */
static void report(double seconds, const char *extra) {
  qsort(samples, sample_count, sizeof *samples, compare);
  printf("{\"count\":%ld,\"seconds\":%.3f,\"p50_ms\":%.4f,\"p99_ms\":%.4f,\"p999_ms\":%.4f,\"max_ms\":%.4f%s}\n",
         sample_count, seconds, quantile(0.50), quantile(0.99), quantile(0.999),
         sample_count ? samples[sample_count - 1] : 0, extra);
}

struct client {
  int fd;
  char id[80], secret[80];
  long ack;
  double started;
  char buf[1024];
  int have;
  long pending; /* -1 until the reply line is parsed */
  int out;      /* echo: bytes of the echo still to come */
  double worst; /* echo: the longest wait for one echo */
  long echoes;  /* echo: echoes received */
};

static struct client clients[MAX_CLIENTS];
static int client_count;

static void read_sessions(void) {
  while (client_count < MAX_CLIENTS &&
         scanf("%79s %79s", clients[client_count].id, clients[client_count].secret) == 2) {
    client_count++;
  }
}

static void poll_start(int ep, int port, struct client *c) {
  c->fd = connect_to(port);
  c->started = now_ms();
  c->have = 0;
  c->pending = -1;
  char hello[256];
  int n = snprintf(hello, sizeof hello, "RESUME %s %s %ld\n0123456789abcdef", c->id, c->secret, c->ack);
  /* The connect completes at once on loopback; a short send is retried on EPOLLOUT. */
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
  epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
  for (int sent = 0; sent < n;) {
    ssize_t w = send(c->fd, hello + sent, n - sent, MSG_NOSIGNAL);
    if (w < 0 && errno == EAGAIN) continue;
    if (w < 0) break;
    sent += w;
  }
}

static int run_poll(int port, double seconds) {
  read_sessions();
  int ep = epoll_create1(0);
  double end = now_ms() + seconds * 1000;
  for (int i = 0; i < client_count; i++) poll_start(ep, port, &clients[i]);
  struct epoll_event events[MAX_EVENTS];
  while (now_ms() < end) {
    int n = epoll_wait(ep, events, MAX_EVENTS, 100);
    for (int i = 0; i < n; i++) {
      struct client *c = events[i].data.ptr;
      ssize_t r = recv(c->fd, c->buf + c->have, sizeof c->buf - c->have, 0);
      if (r < 0 && errno == EAGAIN) continue;
      int done = r <= 0;
      if (r > 0) {
        c->have += r;
        if (c->pending < 0) {
          char *lf = memchr(c->buf, '\n', c->have);
          if (lf) {
            long in, from, pending;
            char word[8], id[80], secret[80], state[16];
            *lf = 0;
            if (sscanf(c->buf, "%7s %79s %79s %ld %ld %ld %15s", word, id, secret, &in, &from, &pending, state) != 7) {
              fprintf(stderr, "bad reply: %s\n", c->buf);
              exit(1);
            }
            c->pending = pending;
            int rest = c->have - (int)(lf + 1 - c->buf);
            memmove(c->buf, lf + 1, rest);
            c->have = rest;
          }
        }
        if (c->pending >= 0 && c->have >= c->pending) {
          c->ack += c->pending;
          done = 1;
        } else if (c->pending >= 0) {
          c->pending -= c->have;
          c->ack += c->have;
          c->have = 0;
        }
      }
      if (done) {
        close(c->fd);
        if (sample_count < MAX_SAMPLES) samples[sample_count++] = now_ms() - c->started;
        if (now_ms() < end) poll_start(ep, port, c);
      }
    }
  }
  report(seconds, "");
  return 0;
}

static int run_echo(int port, double seconds, double bound_ms) {
  read_sessions();
  int ep = epoll_create1(0);
  static const char message[64] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\n";
  for (int i = 0; i < client_count; i++) {
    struct client *c = &clients[i];
    c->fd = connect_to(port);
    char hello[256];
    int n = snprintf(hello, sizeof hello, "RESUME %s %s\n", c->id, c->secret);
    /* Blocking handshake: read the reply line before the timed part. */
    fcntl(c->fd, F_SETFL, 0);
    if (send(c->fd, hello, n, MSG_NOSIGNAL) != n) die("send hello");
    char ch;
    while (recv(c->fd, &ch, 1, 0) == 1 && ch != '\n') {}
    fcntl(c->fd, F_SETFL, O_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
  }
  double end = now_ms() + seconds * 1000;
  for (int i = 0; i < client_count; i++) {
    struct client *c = &clients[i];
    c->started = now_ms();
    c->out = sizeof message;
    send(c->fd, message, sizeof message, MSG_NOSIGNAL);
  }
  struct epoll_event events[MAX_EVENTS];
  while (now_ms() < end) {
    int n = epoll_wait(ep, events, MAX_EVENTS, 100);
    for (int i = 0; i < n; i++) {
      struct client *c = events[i].data.ptr;
      ssize_t r = recv(c->fd, c->buf, sizeof c->buf, 0);
      if (r <= 0) continue;
      c->out -= r;
      if (c->out <= 0) {
        double waited = now_ms() - c->started;
        if (sample_count < MAX_SAMPLES) samples[sample_count++] = waited;
        if (waited > c->worst) c->worst = waited;
        c->echoes++;
        c->started = now_ms();
        c->out = sizeof message;
        send(c->fd, message, sizeof message, MSG_NOSIGNAL);
      }
    }
  }
  double stop = now_ms();
  int starved = 0, idle = 0;
  for (int i = 0; i < client_count; i++) {
    struct client *c = &clients[i];
    double waiting = stop - c->started;
    if (c->worst > bound_ms || waiting > bound_ms) starved++;
    if (c->echoes == 0) idle++;
  }
  char extra[96];
  snprintf(extra, sizeof extra, ",\"starved\":%d,\"idle\":%d,\"clients\":%d", starved, idle, client_count);
  report(seconds, extra);
  return 0;
}

/* fake: answer each hello at once with a reply and 16 bytes; echod: echo. */
static _Noreturn void serve(int port, int fake) {
  int lfd = listen_on(port);
  int ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
  static const char answer[] = "OK abcdefghijklmnop AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA 0 0 16 open\n0123456789abcdef";
  printf("ready\n");
  fflush(stdout);
  struct epoll_event events[MAX_EVENTS];
  char buf[65536];
  for (;;) {
    int n = epoll_wait(ep, events, MAX_EVENTS, -1);
    for (int i = 0; i < n; i++) {
      int fd = events[i].data.fd;
      if (fd == lfd) {
        int c;
        while ((c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
          int one = 1;
          setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          struct epoll_event cev = {.events = EPOLLIN, .data.fd = c};
          epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
        }
        continue;
      }
      ssize_t r = recv(fd, buf, sizeof buf, 0);
      if (r < 0 && errno == EAGAIN) continue;
      if (r <= 0) {
        close(fd);
        continue;
      }
      if (fake) {
        send(fd, answer, sizeof answer - 1, MSG_NOSIGNAL);
        close(fd);
      } else {
        for (ssize_t sent = 0; sent < r;) {
          ssize_t w = send(fd, buf + sent, r - sent, MSG_NOSIGNAL);
          if (w <= 0) break;
          sent += w;
        }
      }
    }
  }
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: loadgen poll|echo PORT SECONDS < sessions | loadgen fake|echod PORT\n");
    return 2;
  }
  samples = malloc(sizeof *samples * MAX_SAMPLES);
  int port = atoi(argv[2]);
  if (!strcmp(argv[1], "poll")) return run_poll(port, atof(argv[3]));
  if (!strcmp(argv[1], "echo")) return run_echo(port, atof(argv[3]), argc > 4 ? atof(argv[4]) : 1000);
  if (!strcmp(argv[1], "fake")) serve(port, 1);
  if (!strcmp(argv[1], "echod")) serve(port, 0);
  return 2;
}
