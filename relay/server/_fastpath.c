/* relay.server._fastpath: the UDP forwarding loop of the relay's packet path, in C.

Why hand-written: no library forwards TURN datagrams in C for Python (aiortc/aioice are pure Python
clients, coturn and pion are servers of their own), and the Python path is bound by interpreter work
around each system call (bench/PROFILE.md). This module only moves datagrams; the Python control plane
(relay.turn) stays the only authority and installs entries through relay.server.cpath.CMirror after a
ChannelBind or CreatePermission succeeded, and removes them on expiry, Refresh(0) and drop.

One Engine per process owns a private epoll set (its descriptor is what the event loop watches) and:
  * listeners (add_listener): recvmmsg batches; ChannelData whose (listener, client, channel) is
    installed, and Send indications (XOR-PEER-ADDRESS IPv4, DATA, optional FINGERPRINT, nothing else
    comprehension-required) whose (listener, client, peer IP) is permitted, are sent from the relay
    socket; anything else is handed back unchanged: callback(bytes, (host, port));
  * relay sockets (add_relay): recvmmsg takes what a ready socket holds; a datagram from an installed
    peer becomes ChannelData (channel bound; no padding over UDP, RFC 8656 section 12.5) or a Data
    indication (permission only), queued and sent through the listener with sendmmsg once per round;
    anything else is handed back the same way;
  * any other descriptor (add): its Python handler() is called, returning payload bytes relayed or -1.
Pending sends are flushed before any Python code runs, so entries never go away under a queued packet.
Built against the limited API (abi3, Python >= 3.10); Linux only.
*/
#define Py_LIMITED_API 0x030A0000
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "_fastpath_table.h"

/* --- the packet path -------------------------------------------------------------------------------- */

static void flush_streams(Engine *e);

static void flush(Engine *e) {
    int i = 0, n = e->queued;
    while (i < n) {
        int run = 1;
        while (i + run < n && e->qfd[i + run] == e->qfd[i]) run++;
        int sent = sendmmsg(e->qfd[i], &e->qmsg[i], (unsigned)run, MSG_DONTWAIT);
        if (sent <= 0) sent = 0, i++; /* the first one failed (a full buffer, an ICMP error): drop it */
        for (int j = i; j < i + sent; j++) {
            e->qentry[j]->packets++, e->qentry[j]->bytes += e->qsize[j];
            e->down_packets++, e->down_bytes += e->qsize[j];
        }
        i += sent;
    }
    if (e->squeued) flush_streams(e);
    e->queued = e->slots = 0;
}

static PyObject *address_tuple(const struct sockaddr_in *sa) {
    char text[INET_ADDRSTRLEN];
    if (!inet_ntop(AF_INET, &sa->sin_addr, text, sizeof text)) return NULL;
    return Py_BuildValue("(si)", text, ntohs(sa->sin_port));
}

/* Hand a datagram back to Python: callback(bytes, (host, port)); an exception is reported, not raised. */
static void hand_back(Engine *e, PyObject *callback, const unsigned char *data, size_t size,
                      const struct sockaddr_in *from) {
    flush(e);
    if (!callback) return;
    Py_INCREF(callback); /* the callback may remove its own descriptor */
    PyObject *result = NULL, *address = address_tuple(from);
    if (address) {
        result = PyObject_CallFunction(callback, "(y#O)", (const char *)data, (Py_ssize_t)size, address);
        Py_DECREF(address);
    }
    if (result)
        Py_DECREF(result);
    else
        PyErr_WriteUnraisable(callback);
    Py_DECREF(callback);
}

/* A Send indication's peer and payload, or 0: anything unusual is for Python to judge. */
static int parse_send(const unsigned char *d, size_t n, uint32_t *ip, uint16_t *port, size_t *start, size_t *len) {
    if (be32(d + 4) != MAGIC || (size_t)be16(d + 2) + 20 != n || (n & 3)) return 0;
    int peer = 0, data = 0;
    size_t off = 20;
    while (off < n) {
        if (n - off < 4) return 0;
        unsigned type = be16(d + off), length = be16(d + off + 2);
        size_t at = off + 4, end = at + length;
        if (end > n) return 0;
        if (type == 0x0013) {
            if (data++) return 0;
            *start = at, *len = length;
        } else if (type == 0x0012) {
            if (peer++ || length != 8 || d[at + 1] != 0x01) return 0;
            *port = (uint16_t)(be16(d + at + 2) ^ 0x2112);
            uint32_t x = be32(d + at + 4) ^ MAGIC;
            *ip = htonl(x);
        } else if (type == 0x8028) {
            if (length != 4 || end != n || be32(d + at) != (crc32_of(d, off) ^ 0x5354554Eu)) return 0;
        } else if (type < 0x8000) {
            return 0; /* DONT-FRAGMENT, or anything Python must accept or refuse */
        }
        off = at + ((length + 3u) & ~3u);
    }
    return peer && data && off == n && *port;
}

/* Where a received datagram of n bytes starts: its dense slot, or, when its tail went to the large slot's
   second iovec, the large slot, once the head was copied in front of that tail (rare: over SMALL bytes). */
static unsigned char *joined(unsigned char *dense, unsigned char *large, size_t n) {
    if (n <= SMALL) return dense;
    memcpy(large, dense, SMALL);
    return large;
}

/* Client -> peer, for a UDP client's datagram or a TCP client's frame: ChannelData on an installed channel, or
   a Send indication to a permitted peer, sent from the relay socket. 1 when an entry covered it (sent, or lost
   to a failed send as a datagram may be), 0 when it is for Python to judge. */
static int forward_up(Engine *e, int fd, uint64_t client, const unsigned char *d, size_t n) {
    if (n >= 4 && (d[0] & 0xC0) == 0x40) {
        Key k = make_key(K_CHANNEL_OUT, fd, client, 0, be16(d));
        Entry *x = find(e, &k);
        size_t length = be16(d + 2);
        if (!x || length > n - 4) return 0;
        if (sendto(x->out_fd, d + 4, length, MSG_DONTWAIT, (struct sockaddr *)&x->dest, sizeof x->dest) >= 0)
            x->packets++, x->bytes += length, e->up_packets++, e->up_bytes += length;
        return 1;
    }
    uint32_t ip = 0;
    uint16_t port = 0;
    size_t start = 0, length = 0;
    if (n < 20 || d[0] != 0 || d[1] != 0x16 || !parse_send(d, n, &ip, &port, &start, &length)) return 0;
    Key k = make_key(K_PERMIT_OUT, fd, client, ip, 0);
    Entry *x = find(e, &k);
    if (!x) return 0;
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(port)};
    to.sin_addr.s_addr = ip;
    if (sendto(x->out_fd, d + start, length, MSG_DONTWAIT, (struct sockaddr *)&to, sizeof to) >= 0)
        x->packets++, x->bytes += length, e->up_packets++, e->up_bytes += length;
    return 1;
}

#include "_fastpath_stream.h"

static void on_listener(Engine *e, int fd) {
    for (int i = 0; i < BATCH; i++) e->rmsg[i].msg_hdr.msg_namelen = sizeof e->rname[i];
    int count = recvmmsg(fd, e->rmsg, BATCH, MSG_DONTWAIT, NULL);
    for (int i = 0; i < count; i++) {
        size_t n = e->rmsg[i].msg_len;
        const unsigned char *d = joined(e->riov[2 * i].iov_base, e->rx + (size_t)i * SLOT, n);
        const struct sockaddr_in *from = &e->rname[i];
        uint64_t client;
        memcpy(&client, from, 8);
        if (from->sin_family == AF_INET && forward_up(e, fd, client, d, n)) continue;
        if (e->fds[fd].type != FD_LISTENER) return; /* removed by an earlier callback of this batch */
        hand_back(e, e->fds[fd].callback, d, n, from);
    }
}

/* Put the ChannelData or Data-indication header in front of a datagram from a peer and queue it for the
   client; 0 when no entry covers that peer (or a Data indication would overflow its length field). */
static int queue_for_client(Engine *e, int fd, unsigned char *slot, size_t n, const struct sockaddr_in *from) {
    size_t start, end = HEADROOM + n;
    uint64_t peer;
    memcpy(&peer, from, 8);
    Key k = make_key(K_CHANNEL_IN, fd, peer, 0, 0);
    Entry *x = find(e, &k);
    int stream = x && e->fds[x->out_fd].type == FD_STREAM;
    if (x) {
        start = HEADROOM - 4;
        put16(slot + start, x->number), put16(slot + start + 2, (unsigned)n);
        if (stream) memset(slot + end, 0, -n & 3), end += -n & 3; /* padded over TCP (RFC 8656 section 12.5) */
    } else {
        k = make_key(K_PERMIT_IN, fd, 0, from->sin_addr.s_addr, 0);
        x = find(e, &k);
        size_t pad = -n & 3, length = 16 + n + pad;
        if (!x || length > 0xFFFF) return 0;
        start = HEADROOM - 36;
        unsigned char *h = slot + start;
        put16(h, 0x0017), put16(h + 2, (unsigned)length);
        h[4] = 0x21, h[5] = 0x12, h[6] = 0xA4, h[7] = 0x42;
        memcpy(h + 8, x->tid, 12);
        put16(h + 20, 0x0012), put16(h + 22, 8), h[24] = 0, h[25] = 0x01;
        put16(h + 26, ntohs(from->sin_port) ^ 0x2112);
        uint32_t xored = ntohl(from->sin_addr.s_addr) ^ MAGIC;
        h[28] = (unsigned char)(xored >> 24), h[29] = (unsigned char)(xored >> 16);
        h[30] = (unsigned char)(xored >> 8), h[31] = (unsigned char)xored;
        put16(h + 32, 0x0013), put16(h + 34, (unsigned)n);
        memset(slot + end, 0, pad);
        end += pad;
        stream = e->fds[x->out_fd].type == FD_STREAM;
    }
    if (stream) return stream_relayed(e, x, slot + start, end - start, n);
    int q = e->queued++;
    e->qiov[q].iov_base = slot + start, e->qiov[q].iov_len = end - start;
    e->qmsg[q].msg_hdr.msg_name = &x->dest;
    e->qfd[q] = x->out_fd, e->qentry[q] = x, e->qsize[q] = (unsigned)n;
    return 1;
}

/* A ready relay socket: whatever it holds (up to the free slots) in one recvmmsg, received behind the
   headroom of the send slots so that headers go in front without a copy. Datagrams no entry covers are
   handed back after the others were sent (their slots stay intact until the next receive). */
static void on_relay(Engine *e, int fd) {
    if (e->slots == BATCH) flush(e);
    int base = e->slots, back[BATCH], nback = 0;
    unsigned char *slot[BATCH];
    for (int i = base; i < BATCH; i++) e->pmsg[i].msg_hdr.msg_namelen = sizeof e->pfrom[i];
    int got = recvmmsg(fd, &e->pmsg[base], (unsigned)(BATCH - base), MSG_DONTWAIT, NULL);
    if (got <= 0) return; /* nothing after all, or a queued ICMP error */
    e->slots += got;
    for (int i = base; i < base + got; i++) {
        const struct sockaddr_in *from = &e->pfrom[i];
        slot[i] = joined(e->piov[2 * i].iov_base, e->tx + (size_t)i * QSLOT + HEADROOM, e->pmsg[i].msg_len) - HEADROOM;
        if (from->sin_family != AF_INET || e->pmsg[i].msg_hdr.msg_namelen < sizeof *from ||
            !queue_for_client(e, fd, slot[i], e->pmsg[i].msg_len, from))
            back[nback++] = i;
    }
    if (!nback) return;
    flush(e);
    for (int j = 0; j < nback && e->fds[fd].type == FD_RELAY; j++) {
        int i = back[j];
        hand_back(e, e->fds[fd].callback, slot[i] + HEADROOM, e->pmsg[i].msg_len, &e->pfrom[i]);
    }
}

/* --- the Python type ------------------------------------------------------------------------------- */

static int parse_v4(PyObject *address, uint64_t *key, struct sockaddr_in *sa) {
    const char *host;
    int port;
    if (!PyTuple_Check(address)) {
        PyErr_Format(PyExc_TypeError, "an address is a (host, port) tuple, not %R", address);
        return -1;
    }
    if (!PyArg_ParseTuple(address, "si", &host, &port)) return -1;
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    if (port < 0 || port > 65535 || inet_pton(AF_INET, host, &sa->sin_addr) != 1) {
        PyErr_Format(PyExc_ValueError, "not an IPv4 address and port: %R", address);
        return -1;
    }
    sa->sin_port = htons((uint16_t)port);
    if (key) memcpy(key, sa, 8);
    return 0;
}

static int register_fd(Engine *self, int fd, int type, PyObject *callback) {
    if (grow_fds(self, fd)) {
        PyErr_SetString(PyExc_ValueError, "bad descriptor");
        return -1;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
    if (self->fds[fd].type == FD_NONE && epoll_ctl(self->epfd, EPOLL_CTL_ADD, fd, &ev)) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    PyObject *old = self->fds[fd].callback;
    Py_XINCREF(callback);
    self->fds[fd].callback = callback;
    self->fds[fd].type = type;
    Py_XDECREF(old);
    return 0;
}

static PyObject *add_as(Engine *self, PyObject *args, int type) {
    int fd;
    PyObject *callback;
    if (!PyArg_ParseTuple(args, "iO", &fd, &callback)) return NULL;
    if (!PyCallable_Check(callback)) return PyErr_Format(PyExc_TypeError, "the callback must be callable");
    if (register_fd(self, fd, type, callback)) return NULL;
    Py_RETURN_NONE;
}

static PyObject *Engine_add(Engine *self, PyObject *args) { return add_as(self, args, FD_PYTHON); }
static PyObject *Engine_add_listener(Engine *self, PyObject *args) { return add_as(self, args, FD_LISTENER); }
static PyObject *Engine_add_relay(Engine *self, PyObject *args) { return add_as(self, args, FD_RELAY); }

static void forget_fd(Engine *self, int fd) {
    if (fd < 0 || (size_t)fd >= self->nfds) return;
    flush(self);
    purge_fd(self, fd);
    self->fds[fd].type = FD_NONE;
    self->fds[fd].gen++;
    stream_free(self->fds[fd].stream);
    self->fds[fd].stream = NULL;
    Py_CLEAR(self->fds[fd].callback);
}

static PyObject *Engine_remove(Engine *self, PyObject *args) {
    int fd;
    if (!PyArg_ParseTuple(args, "i", &fd)) return NULL;
    if (fd >= 0 && (size_t)fd < self->nfds && self->fds[fd].type != FD_NONE)
        epoll_ctl(self->epfd, EPOLL_CTL_DEL, fd, NULL); /* already gone with its socket: fine */
    forget_fd(self, fd);
    Py_RETURN_NONE;
}

/* The socket is about to be closed, which removes it from the epoll set. */
static PyObject *Engine_closing(Engine *self, PyObject *args) {
    int fd;
    if (!PyArg_ParseTuple(args, "i", &fd)) return NULL;
    forget_fd(self, fd);
    Py_RETURN_NONE;
}

/* channel(install, listener_fd, client, number, relay_fd, peer): both directions of one channel. */
static PyObject *Engine_channel(Engine *self, PyObject *args) {
    int install, lfd, number, rfd;
    PyObject *client, *peer;
    uint64_t ckey, pkey;
    struct sockaddr_in csa, psa;
    if (!PyArg_ParseTuple(args, "piOiiO", &install, &lfd, &client, &number, &rfd, &peer)) return NULL;
    if (parse_v4(client, &ckey, &csa) || parse_v4(peer, &pkey, &psa)) return NULL;
    if (number < 0x4000 || number > 0x7FFF) return PyErr_Format(PyExc_ValueError, "channel %d", number);
    flush(self);
    Key out = make_key(K_CHANNEL_OUT, lfd, ckey, 0, (unsigned)number), in = make_key(K_CHANNEL_IN, rfd, pkey, 0, 0);
    if (!install) return PyBool_FromLong(erase(self, &out) + erase(self, &in) == 2);
    Entry *x = insert(self, &out, rfd), *y = x ? insert(self, &in, lfd) : NULL;
    if (!y) {
        erase(self, &out);
        return PyErr_NoMemory();
    }
    x->dest = psa, y->dest = csa, y->number = (uint16_t)number;
    Py_RETURN_TRUE;
}

/* permission(install, listener_fd, client, relay_fd, peer_host): Send and Data indications for one peer IP. */
static PyObject *Engine_permission(Engine *self, PyObject *args) {
    int install, lfd, rfd;
    PyObject *client, *peer;
    const char *host;
    uint64_t ckey;
    struct sockaddr_in csa, psa;
    if (!PyArg_ParseTuple(args, "piOis", &install, &lfd, &client, &rfd, &host)) return NULL;
    if (parse_v4(client, &ckey, &csa)) return NULL;
    peer = Py_BuildValue("(si)", host, 0);
    if (!peer) return NULL;
    int bad = parse_v4(peer, NULL, &psa);
    Py_DECREF(peer);
    if (bad) return NULL;
    flush(self);
    Key out = make_key(K_PERMIT_OUT, lfd, ckey, psa.sin_addr.s_addr, 0);
    Key in = make_key(K_PERMIT_IN, rfd, 0, psa.sin_addr.s_addr, 0);
    if (!install) return PyBool_FromLong(erase(self, &out) + erase(self, &in) == 2);
    Entry *x = insert(self, &out, rfd), *y = x ? insert(self, &in, lfd) : NULL;
    if (!y) {
        erase(self, &out);
        return PyErr_NoMemory();
    }
    y->dest = csa;
    if (getrandom(y->tid, sizeof y->tid, 0) != (ssize_t)sizeof y->tid) return PyErr_SetFromErrno(PyExc_OSError);
    Py_RETURN_TRUE;
}

/* counters(kind, fd, address, number_or_peer_host): (packets, bytes) of one entry, or None. */
static PyObject *Engine_counters(Engine *self, PyObject *args) {
    int kind, fd, number = 0;
    PyObject *address;
    const char *host = "0.0.0.0";
    uint64_t a = 0;
    struct sockaddr_in sa, psa;
    if (!PyArg_ParseTuple(args, "iiO|is", &kind, &fd, &address, &number, &host)) return NULL;
    if (parse_v4(address, &a, &sa) || inet_pton(AF_INET, host, &psa.sin_addr) != 1)
        return PyErr_Format(PyExc_ValueError, "bad address");
    Key k = kind == K_PERMIT_IN ? make_key(kind, fd, 0, sa.sin_addr.s_addr, 0)
                                : make_key(kind, fd, a, kind == K_PERMIT_OUT ? psa.sin_addr.s_addr : 0,
                                           kind == K_CHANNEL_OUT ? (unsigned)number : 0);
    flush(self);
    Entry *x = find(self, &k);
    if (!x) Py_RETURN_NONE;
    return Py_BuildValue("(KK)", x->packets, x->bytes);
}

/* poll(rounds): serve ready sockets for up to `rounds` epoll rounds without blocking; returns what was
   relayed by this call: (client->peer packets, bytes, peer->client packets, bytes). */
static PyObject *Engine_poll(Engine *self, PyObject *args) {
    int rounds;
    struct epoll_event events[MAX_EVENTS];
    if (!PyArg_ParseTuple(args, "i", &rounds)) return NULL;
    self->up_packets = self->up_bytes = self->down_packets = self->down_bytes = 0;
    for (int r = 0; r < rounds; r++) {
        int n = epoll_wait(self->epfd, events, MAX_EVENTS, 0);
        if (n <= 0) break;
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (fd < 0 || (size_t)fd >= self->nfds) continue;
            PyObject *callback = self->fds[fd].callback;
            switch (self->fds[fd].type) {
            case FD_LISTENER:
                on_listener(self, fd);
                break;
            case FD_RELAY:
                on_relay(self, fd);
                break;
            case FD_STREAM:
                on_stream(self, fd, events[i].events);
                break;
            case FD_PYTHON: {
                flush(self);
                Py_INCREF(callback);
                PyObject *result = PyObject_CallNoArgs(callback);
                long size = result ? PyLong_AsLong(result) : -1;
                Py_XDECREF(result);
                if (PyErr_Occurred())
                    PyErr_WriteUnraisable(callback);
                else if (size >= 0)
                    self->down_packets++, self->down_bytes += (unsigned long long)size;
                Py_DECREF(callback);
                break;
            }
            default: /* removed by an earlier handler of this round */
                break;
            }
        }
        flush(self);
    }
    flush(self);
    return Py_BuildValue("(KKKK)", self->up_packets, self->up_bytes, self->down_packets, self->down_bytes);
}

static PyObject *Engine_fileno(Engine *self, PyObject *Py_UNUSED(ignored)) { return PyLong_FromLong(self->epfd); }

static PyObject *Engine_len(Engine *self, PyObject *Py_UNUSED(ignored)) {
    size_t n = 0;
    for (size_t i = 0; i < self->nfds; i++) n += self->fds[i].type != FD_NONE;
    return Py_BuildValue("(nn)", (Py_ssize_t)n, (Py_ssize_t)self->count);
}

static void Engine_release(Engine *self) {
    for (size_t i = 0; i < self->nbuckets; i++)
        for (Entry *x = self->buckets ? self->buckets[i] : NULL, *next; x; x = next) next = x->next, free(x);
    self->count = 0;
    self->squeued = 0;
    for (size_t i = 0; i < self->nfds; i++) {
        Py_CLEAR(self->fds[i].callback);
        stream_free(self->fds[i].stream);
        self->fds[i].stream = NULL;
        self->fds[i].type = FD_NONE, self->fds[i].refs = 0, self->fds[i].gen++;
    }
    if (self->epfd >= 0) close(self->epfd), self->epfd = -1;
}

static PyObject *Engine_close(Engine *self, PyObject *Py_UNUSED(ignored)) {
    Engine_release(self);
    if (self->buckets) memset(self->buckets, 0, self->nbuckets * sizeof *self->buckets);
    Py_RETURN_NONE;
}

static int Engine_init(Engine *self, PyObject *args, PyObject *kwargs) {
    if (!PyArg_ParseTuple(args, ":Engine") || (kwargs && PyObject_Length(kwargs) > 0)) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "Engine() takes no arguments");
        return -1;
    }
    if (self->epfd > 0) return 0;
    self->epfd = epoll_create1(EPOLL_CLOEXEC);
    self->nbuckets = 1024;
    self->buckets = calloc(self->nbuckets, sizeof *self->buckets);
    self->rx = mmap(NULL, (size_t)BATCH * SLOT, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    self->tx = mmap(NULL, (size_t)BATCH * QSLOT, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    self->dense = mmap(NULL, DENSE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (self->epfd < 0 || self->rx == MAP_FAILED || self->tx == MAP_FAILED || self->dense == MAP_FAILED) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    if (!self->buckets || getrandom(&self->seed, sizeof self->seed, 0) != sizeof self->seed) {
        PyErr_NoMemory();
        return -1;
    }
    for (int i = 0; i < BATCH; i++) {
        unsigned char *rdense = self->dense + (size_t)i * SMALL;
        unsigned char *pdense = self->dense + (size_t)BATCH * SMALL + (size_t)i * QSMALL + HEADROOM;
        self->riov[2 * i].iov_base = rdense, self->riov[2 * i].iov_len = SMALL;
        self->riov[2 * i + 1].iov_base = self->rx + (size_t)i * SLOT + SMALL, self->riov[2 * i + 1].iov_len = SLOT - SMALL;
        self->rmsg[i].msg_hdr.msg_name = &self->rname[i];
        self->rmsg[i].msg_hdr.msg_namelen = sizeof self->rname[i];
        self->rmsg[i].msg_hdr.msg_iov = &self->riov[2 * i], self->rmsg[i].msg_hdr.msg_iovlen = 2;
        self->qmsg[i].msg_hdr.msg_namelen = sizeof(struct sockaddr_in);
        self->piov[2 * i].iov_base = pdense, self->piov[2 * i].iov_len = SMALL;
        self->piov[2 * i + 1].iov_base = self->tx + (size_t)i * QSLOT + HEADROOM + SMALL;
        self->piov[2 * i + 1].iov_len = SLOT - SMALL;
        self->pmsg[i].msg_hdr.msg_name = &self->pfrom[i];
        self->pmsg[i].msg_hdr.msg_iov = &self->piov[2 * i], self->pmsg[i].msg_hdr.msg_iovlen = 2;
        self->qmsg[i].msg_hdr.msg_iov = &self->qiov[i], self->qmsg[i].msg_hdr.msg_iovlen = 1;
    }
    return 0;
}

static PyObject *Engine_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    allocfunc alloc = (allocfunc)PyType_GetSlot(type, Py_tp_alloc);
    Engine *self = (Engine *)alloc(type, 0);
    if (self) self->epfd = -1, self->rx = self->tx = self->dense = MAP_FAILED;
    return (PyObject *)self;
}

static void Engine_dealloc(Engine *self) {
    PyTypeObject *type = Py_TYPE(self);
    Engine_release(self);
    free(self->buckets), free(self->fds);
    if (self->rx != MAP_FAILED) munmap(self->rx, (size_t)BATCH * SLOT);
    if (self->tx != MAP_FAILED) munmap(self->tx, (size_t)BATCH * QSLOT);
    if (self->dense != MAP_FAILED) munmap(self->dense, DENSE);
    freefunc tp_free = (freefunc)PyType_GetSlot(type, Py_tp_free);
    tp_free(self);
    Py_DECREF(type);
}

static PyMethodDef Engine_methods[] = {
    {"fileno", (PyCFunction)Engine_fileno, METH_NOARGS, "the epoll descriptor the event loop watches"},
    {"add", (PyCFunction)Engine_add, METH_VARARGS, "add(fd, handler): handler() -> payload bytes or -1"},
    {"add_listener", (PyCFunction)Engine_add_listener, METH_VARARGS, "add_listener(fd, callback(data, address))"},
    {"add_relay", (PyCFunction)Engine_add_relay, METH_VARARGS, "add_relay(fd, callback(data, address))"},
    {"add_stream", (PyCFunction)Engine_add_stream, METH_VARARGS,
     "add_stream(fd, callback(frame bytes | STREAM_* code), client, initial, max_frame, high, low)"},
    {"stream_write", (PyCFunction)Engine_stream_write, METH_VARARGS, "stream_write(fd, data, always) -> queued"},
    {"stream_state", (PyCFunction)Engine_stream_state, METH_VARARGS, "stream_state(fd) -> (paused, held, pending)"},
    {"stream_limit", (PyCFunction)Engine_stream_limit, METH_VARARGS, "stream_limit(fd, max_frame)"},
    {"remove", (PyCFunction)Engine_remove, METH_VARARGS, "remove(fd): stop watching, forget its entries"},
    {"closing", (PyCFunction)Engine_closing, METH_VARARGS, "closing(fd): about to be closed"},
    {"channel", (PyCFunction)Engine_channel, METH_VARARGS, "channel(install, lfd, client, number, rfd, peer)"},
    {"permission", (PyCFunction)Engine_permission, METH_VARARGS, "permission(install, lfd, client, rfd, host)"},
    {"counters", (PyCFunction)Engine_counters, METH_VARARGS, "counters(kind, fd, address[, number, host])"},
    {"poll", (PyCFunction)Engine_poll, METH_VARARGS, "poll(rounds) -> (up packets, up bytes, down packets, bytes)"},
    {"sizes", (PyCFunction)Engine_len, METH_NOARGS, "(descriptors watched, entries installed)"},
    {"close", (PyCFunction)Engine_close, METH_NOARGS, "forget everything and close the epoll descriptor"},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot Engine_slots[] = {
    {Py_tp_new, Engine_new},       {Py_tp_init, Engine_init},       {Py_tp_dealloc, Engine_dealloc},
    {Py_tp_methods, Engine_methods}, {Py_tp_doc, "The UDP packet path of one relay process."}, {0, NULL},
};

static PyType_Spec Engine_spec = {"relay.server._fastpath.Engine", sizeof(Engine), 0, Py_TPFLAGS_DEFAULT, Engine_slots};

static int module_exec(PyObject *module) {
    crc_init();
    PyObject *type = PyType_FromSpec(&Engine_spec);
    if (!type || PyModule_AddObject(module, "Engine", type)) {
        Py_XDECREF(type);
        return -1;
    }
    return PyModule_AddIntConstant(module, "CHANNEL_OUT", K_CHANNEL_OUT) ||
           PyModule_AddIntConstant(module, "PERMIT_OUT", K_PERMIT_OUT) ||
           PyModule_AddIntConstant(module, "CHANNEL_IN", K_CHANNEL_IN) ||
           PyModule_AddIntConstant(module, "PERMIT_IN", K_PERMIT_IN) ||
           PyModule_AddIntConstant(module, "STREAM_EOF", STREAM_EOF) ||
           PyModule_AddIntConstant(module, "STREAM_MALFORMED", STREAM_MALFORMED) ||
           PyModule_AddIntConstant(module, "STREAM_TOO_LARGE", STREAM_TOO_LARGE) ||
           PyModule_AddIntConstant(module, "STREAM_OUT_OF_MEMORY", STREAM_OUT_OF_MEMORY);
}

/* _fail_growth(n): for tests, the n-th next growth of a stream buffer fails as if memory ran out (-1: none). */
static PyObject *fail_growth(PyObject *module, PyObject *args) {
    (void)module;
    if (!PyArg_ParseTuple(args, "n", &growths_before_failure)) return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"_fail_growth", fail_growth, METH_VARARGS, "_fail_growth(n): tests only, the n-th next buffer growth fails"},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot module_slots[] = {{Py_mod_exec, module_exec}, {0, NULL}};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "relay.server._fastpath", "The relay's UDP forwarding loop in C (see the source).", 0,
    module_methods, module_slots, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__fastpath(void) { return PyModuleDef_Init(&module_def); }
