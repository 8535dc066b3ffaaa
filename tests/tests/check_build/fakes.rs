//! The fake servers: one small Python server, `xps`, told which bugs to have, and one small C
//! server built with gcc (with `-fsanitize=address,undefined` when a test wants the sanitizer's
//! report), with a bug chosen at compile time.

/// The Python fake: `xps MODES HOST PORT...` (MODES comma-separated; arguments that are not
/// ports, such as the tester's config file, are ignored). A single-threaded `select()` loop
/// like the course's, so Experiment #1 stalls it as it stalls stage 7, unless told `threads`.
pub const PYTHON: &str = r#"#!/usr/bin/env python3
import os, select, signal, socket, sys, threading, time
modes, host = set(sys.argv[1].split(",")), sys.argv[2]
ports = [int(p) for p in sys.argv[3:] if p.isdigit()]
if "daemon" in modes:
    # Daemonize: fork twice, leave the session, and let the first process exit 0.
    if os.fork() > 0:
        os._exit(0)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
if "late" in modes:
    time.sleep(1.5)
if "ufffe" in modes:
    print("[INFO] main() : starting \ufffe\uffff", flush=True)
listeners = []
for port in ports:
    if "v6only" in modes:
        s = socket.socket(socket.AF_INET6)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    else:
        s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("::" if "v6only" in modes else host, port))
    s.listen(64)
    listeners.append(s)
    print("[INFO] main() : Server listening on port %d" % port, flush=True)
count = 0

def reply_to(s, data):
    global count
    count += 1
    print("[CLIENT MESSAGE] %r" % data[:60], flush=True)
    if "segv" in modes and count == 3:
        os.kill(os.getpid(), signal.SIGSEGV)
    if "slow" in modes:
        time.sleep(3)
    body, newline = (data[:-1], b"\n") if data.endswith(b"\n") else (data, b"")
    reply = body[::-1] + newline
    if "newline" in modes:
        reply = data[:-1][::-1] + data[-1:]
    if "nul" in modes:
        reply += b"\0"
    if "split" in modes and len(reply) > 1:
        s.sendall(reply[:1])
        time.sleep(0.05)
        s.sendall(reply[1:])
    else:
        s.sendall(reply)

def serve(s):
    # One connection on a thread of its own: a client that does not read stalls no one else.
    while True:
        try:
            data = s.recv(100000)
            if not data:
                break
            reply_to(s, data)
        except OSError:
            break
    s.close()

conns = []
while True:
    ready, _, _ = select.select(listeners + conns, [], [])
    for s in ready:
        if s in listeners:
            c = s.accept()[0]
            if "threads" in modes:
                threading.Thread(target=serve, args=(c,), daemon=True).start()
            else:
                conns.append(c)
            continue
        try:
            data = s.recv(100000)
        except OSError:
            data = b""
        if not data:
            # A list bug (one list per port): removing any connection but its port's last one
            # crashes the server. Per port, so check 1's client on one port leaving as the next
            # port's client connects is never a removal from the middle, whatever the timing.
            if "crash_removing_middle" in modes:
                port = s.getsockname()[1]
                if s is not [c for c in conns if c.getsockname()[1] == port][-1]:
                    os.kill(os.getpid(), signal.SIGSEGV)
            conns.remove(s)
            s.close()
            continue
        try:
            reply_to(s, data)
        except OSError:
            conns.remove(s)
            s.close()
"#;

/// The C fake: the course's stage 7 shape (an epoll loop, loop events, a read handler that
/// reverses what one `recv()` returned, Ctrl+C that ends the loop and destroys every event), on
/// 0.0.0.0:8001-8004, its arguments ignored as the course's are. Its bugs, chosen with `-D`:
/// `OFF_BY_ONE` (`buff[read_n] = '\0'` on a buffer of exactly `DEFAULT_BUFFER_SIZE`),
/// `DOUBLE_FREE` (each loop event destroyed twice at shutdown), `SEGV_IN_SIGINT_HANDLER`.
pub const C: &str = r#"#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#define DEFAULT_BUFFER_SIZE 100000
#define MAX_FDS 1024

typedef struct loop_event_s { int fd; int is_listener; } loop_event_t;

static volatile sig_atomic_t quit = 0;
static loop_event_t *events[MAX_FDS];
static volatile int *nowhere = NULL;

void sigint_handler(int signum) {
  (void)signum;
#ifdef SEGV_IN_SIGINT_HANDLER
  *nowhere = 1;
#endif
  quit = 1;
}

loop_event_t *loop_event_create(int fd, int is_listener) {
  loop_event_t *event = malloc(sizeof(loop_event_t));
  event->fd = fd;
  event->is_listener = is_listener;
  return event;
}

void loop_event_destroy(loop_event_t *event) {
  free(event);
}

void connection_destroy(int epoll_fd, loop_event_t *event) {
  epoll_ctl(epoll_fd, EPOLL_CTL_DEL, event->fd, NULL);
  close(event->fd);
  events[event->fd] = NULL;
  loop_event_destroy(event);
}

void connection_read_handler(int epoll_fd, loop_event_t *event) {
#ifdef OFF_BY_ONE
  char buff[DEFAULT_BUFFER_SIZE];
#else
  char buff[DEFAULT_BUFFER_SIZE + 1];
#endif
  long read_n = recv(event->fd, buff, DEFAULT_BUFFER_SIZE, 0);
  if (read_n <= 0) {
    connection_destroy(epoll_fd, event);
    return;
  }
  buff[read_n] = '\0';
  printf("[CLIENT MESSAGE] %ld bytes\n", read_n);
  long end = buff[read_n - 1] == '\n' ? read_n - 2 : read_n - 1;
  for (long start = 0; start < end; start++, end--) {
    char c = buff[start];
    buff[start] = buff[end];
    buff[end] = c;
  }
  for (long sent = 0; sent < read_n;) {
    long n = send(event->fd, buff + sent, read_n - sent, MSG_NOSIGNAL);
    if (n < 0) {
      connection_destroy(epoll_fd, event);
      return;
    }
    sent += n;
  }
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  struct sigaction action = {0};
  action.sa_handler = sigint_handler;
  sigaction(SIGINT, &action, NULL);
  int epoll_fd = epoll_create1(0);
  for (int port = 8001; port <= 8004; port++) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_ANY);
    if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(fd, 64) < 0) {
      perror("bind/listen");
      return 1;
    }
    events[fd] = loop_event_create(fd, 1);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = events[fd]};
    epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &ev);
    printf("[INFO] main() : Server listening on port %d\n", port);
  }
  while (!quit) {
    struct epoll_event ready[64];
    int n = epoll_wait(epoll_fd, ready, 64, -1);
    for (int i = 0; i < n; i++) {
      loop_event_t *event = ready[i].data.ptr;
      if (event->is_listener) {
        int client = accept(event->fd, NULL, NULL);
        if (client < 0 || client >= MAX_FDS) continue;
        events[client] = loop_event_create(client, 0);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = events[client]};
        epoll_ctl(epoll_fd, EPOLL_CTL_ADD, client, &ev);
      } else {
        connection_read_handler(epoll_fd, event);
      }
    }
  }
  printf("[INFO] main() : shutting down\n");
  for (int fd = 0; fd < MAX_FDS; fd++) {
    if (events[fd] == NULL) continue;
    close(fd);
    loop_event_destroy(events[fd]);
#ifdef DOUBLE_FREE
    loop_event_destroy(events[fd]);
#endif
  }
  close(epoll_fd);
  return 0;
}
"#;
