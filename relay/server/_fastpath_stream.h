/* TCP client connections read and written by the Engine (for _fastpath.c, its only includer, after the helpers
   it uses). Python accepts a connection (and reads a PROXY header if its listener takes one), then hands the
   descriptor over with add_stream; from then on the Engine alone reads and writes it, so that relayed data and
   STUN answers share one ordered output queue:
     * input is split into frames (RFC 8656 section 3.1: STUN 20 + length, ChannelData 4 + length padded to 4);
       ChannelData on an installed channel and Send indications to a permitted peer are sent from the relay
       socket here, every other frame is handed to the connection's callback(bytes) as one whole frame;
     * a datagram from an installed peer becomes ChannelData (padded) or a Data indication in the slot it was
       received into, and each connection's datagrams of a round leave in one writev at its end (flush): a
       busy connection gets few large writes instead of one per packet (as coturn's libevent buffers do), and
       nothing is copied unless the socket takes less than all;
     * the same bounds as the Python path (relay.server.stream): above `high` bytes of unsent output reading
       stops, no held frame is processed and relayed data is dropped, until the client has read back to `low`;
       a frame longer than `max_frame` (Python raises it once the connection holds an allocation) or bytes that
       are neither STUN nor ChannelData end the connection;
     * the end (EOF, error, garbage) forgets the descriptor, then calls callback(code) with STREAM_*: Python
       closes the socket and does its bookkeeping. Python's own close calls remove(fd) first;
     * output that cannot be queued (out of memory) would leave a gap in the client's byte stream: the
       connection is shut down instead (stream_break), and ends with STREAM_OUT_OF_MEMORY on its next round. */
#ifndef RELAY_FASTPATH_STREAM_H
#define RELAY_FASTPATH_STREAM_H

enum { STREAM_EOF = 0, STREAM_MALFORMED = 1, STREAM_TOO_LARGE = 2, STREAM_OUT_OF_MEMORY = 3 };
#define STREAM_READ SLOT   /* bytes read per readiness event (level-triggered: the rest comes next round) */
#define GONE ((size_t)-1) /* the connection was ended or removed while its input was being processed */

typedef struct Stream {
    unsigned char *in, *out;
    size_t inlen, incap, outoff, outlen, outcap;
    size_t high, low, max_frame;
    uint64_t client; /* the client's sockaddr_in key (0: not IPv4, no entry can name it) */
    int fd;
    uint32_t events;                  /* the epoll mask in force */
    unsigned char paused, held; /* held: processing stopped with input left because output was full */
    unsigned char broken;       /* shut down by stream_break: its end is reported as STREAM_OUT_OF_MEMORY */
} Stream;

static inline size_t pending(const Stream *s) { return s->outlen - s->outoff; }

/* Tests make the n-th next buffer growth fail as if memory ran out (_fail_growth); -1: never. */
static Py_ssize_t growths_before_failure = -1;

static int append(unsigned char **buf, size_t *len, size_t *cap, const unsigned char *d, size_t n) {
    if (*len + n > *cap) {
        if (growths_before_failure >= 0 && growths_before_failure-- == 0) return -1;
        size_t c = *cap ? *cap : 256;
        while (c < *len + n) c *= 2;
        unsigned char *b = realloc(*buf, c);
        if (!b) return -1;
        *buf = b, *cap = c;
    }
    memcpy(*buf + *len, d, n);
    *len += n;
    return 0;
}

static void stream_free(Stream *s) {
    if (!s) return;
    free(s->in), free(s->out), free(s);
}

/* The epoll mask the connection needs: input unless paused; output while some is pending, or when held
   frames wait for a round in which to be processed (EPOLLOUT fires at once on a writable socket). */
static void stream_watch(Engine *e, Stream *s) {
    uint32_t want = (s->paused ? 0 : EPOLLIN) | (pending(s) || (s->held && !s->paused) ? EPOLLOUT : 0);
    if (want == s->events) return;
    struct epoll_event ev = {.events = want, .data.fd = s->fd};
    if (!epoll_ctl(e->epfd, EPOLL_CTL_MOD, s->fd, &ev)) s->events = want;
}

/* Pause above `high` bytes pending, resume at `low`; an idle connection holds no buffer (malloc < a send). */
static void stream_pace(Stream *s) {
    if (!pending(s)) {
        s->outoff = s->outlen = 0;
        free(s->out), s->out = NULL, s->outcap = 0;
    }
    if (!s->paused && pending(s) > s->high)
        s->paused = 1;
    else if (s->paused && pending(s) <= s->low)
        s->paused = 0;
}

/* Output that could not be queued: what is pending is dropped and the connection shut down (a client must
   never receive a stream with a gap in it). Its end comes from the read side on the next round, where Python
   may be called: this runs inside a flush, which may not. */
static void stream_break(Stream *s) {
    s->outoff = s->outlen;
    s->broken = 1;
    shutdown(s->fd, SHUT_RDWR);
}

/* Write what is pending. An error other than a full buffer drops the output: the connection is broken, and
   its end is reported by the read side (EPOLLERR/EPOLLHUP). */
static void stream_send(Stream *s) {
    while (pending(s)) {
        ssize_t n = send(s->fd, s->out + s->outoff, pending(s), MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0) {
            s->outoff += (size_t)n;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) break;
        s->outoff = s->outlen;
    }
    stream_pace(s);
}

/* The round's datagrams for stream clients, still in their send slots: one writev per connection, in order
   (nothing is copied unless the socket takes less than all, or output from before is still pending). */
static void flush_streams(Engine *e) {
    struct iovec iov[BATCH];
    int n = e->squeued;
    e->squeued = 0;
    for (int i = 0; i < n; i++) {
        Stream *s = e->sq_stream[i];
        if (!s) continue;
        int k = 0;
        size_t total = 0;
        for (int j = i; j < n; j++)
            if (e->sq_stream[j] == s) {
                iov[k++] = e->sq_iov[j], total += e->sq_iov[j].iov_len, e->sq_stream[j] = NULL;
                Entry *x = e->sq_entry[j];
                x->packets++, x->bytes += e->sq_size[j], e->down_packets++, e->down_bytes += e->sq_size[j];
            }
        size_t done = 0;
        if (!pending(s)) {
            struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)k};
            ssize_t sent = sendmsg(s->fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (sent >= 0)
                done = (size_t)sent;
            else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                done = total; /* broken: dropped, as stream_send drops */
        }
        for (int j = 0; j < k && done < total; j++) { /* what the socket did not take, in order */
            size_t skip = done > iov[j].iov_len ? iov[j].iov_len : done;
            done -= skip, total -= skip;
            if (append(&s->out, &s->outlen, &s->outcap, (unsigned char *)iov[j].iov_base + skip, iov[j].iov_len - skip)) {
                stream_break(s);
                break;
            }
            total -= iov[j].iov_len - skip;
        }
        if (pending(s)) stream_send(s);
        stream_pace(s);
        stream_watch(e, s);
    }
}

static void forget_fd(Engine *self, int fd);

/* The connection ends: it is forgotten (entries, output, epoll) before Python hears of it. */
static void stream_end(Engine *e, int fd, int code) {
    PyObject *callback = e->fds[fd].callback;
    Py_XINCREF(callback);
    epoll_ctl(e->epfd, EPOLL_CTL_DEL, fd, NULL);
    forget_fd(e, fd);
    if (!callback) return;
    PyObject *result = PyObject_CallFunction(callback, "(i)", code);
    if (result)
        Py_DECREF(result);
    else
        PyErr_WriteUnraisable(callback);
    Py_DECREF(callback);
}

static void hand_frame(Engine *e, int fd, const unsigned char *d, size_t n) {
    flush(e);
    PyObject *callback = e->fds[fd].callback;
    Py_INCREF(callback); /* the callback may remove its own descriptor */
    PyObject *result = PyObject_CallFunction(callback, "(y#)", (const char *)d, (Py_ssize_t)n);
    if (result)
        Py_DECREF(result);
    else
        PyErr_WriteUnraisable(callback);
    Py_DECREF(callback);
}

/* Handle the complete frames at the start of data[0:len] until output pauses; the bytes consumed, or GONE. */
static size_t stream_frames(Engine *e, int fd, Stream *s, const unsigned char *data, size_t len) {
    unsigned gen = e->fds[fd].gen;
    size_t off = 0;
    while (!s->paused && len - off >= 4) {
        const unsigned char *d = data + off;
        size_t length = be16(d + 2), size;
        if ((d[0] & 0xC0) == 0x40)
            size = 4 + length + (-length & 3);
        else if ((d[0] & 0xC0) == 0)
            size = 20 + length;
        else {
            stream_end(e, fd, STREAM_MALFORMED);
            return GONE;
        }
        if (size > s->max_frame) {
            stream_end(e, fd, STREAM_TOO_LARGE);
            return GONE;
        }
        if (len - off < size) break;
        off += size;
        if (s->client && forward_up(e, fd, s->client, d, size)) continue;
        hand_frame(e, fd, d, size);
        if (e->fds[fd].gen != gen || e->fds[fd].type != FD_STREAM) return GONE;
    }
    s->held = s->paused && off < len;
    return off;
}

/* Process the input the connection holds (after a read appended to it, or once output resumed). */
static void stream_process_held(Engine *e, int fd, Stream *s) {
    size_t used = stream_frames(e, fd, s, s->in, s->inlen);
    if (used == GONE) return;
    memmove(s->in, s->in + used, s->inlen - used);
    s->inlen -= used;
    if (!s->inlen) free(s->in), s->in = NULL, s->incap = 0;
}

static void stream_input(Engine *e, int fd, Stream *s, const unsigned char *d, size_t n) {
    if (s->inlen) {
        if (append(&s->in, &s->inlen, &s->incap, d, n)) return stream_end(e, fd, STREAM_OUT_OF_MEMORY);
        stream_process_held(e, fd, s);
    } else {
        size_t used = stream_frames(e, fd, s, d, n);
        if (used != GONE && used < n && append(&s->in, &s->inlen, &s->incap, d + used, n - used))
            stream_end(e, fd, STREAM_OUT_OF_MEMORY);
    }
}

static void on_stream(Engine *e, int fd, uint32_t events) {
    Stream *s = e->fds[fd].stream;
    unsigned gen = e->fds[fd].gen;
    if (events & EPOLLOUT) {
        stream_send(s);
        if (s->held && !s->paused) stream_process_held(e, fd, s);
        if (e->fds[fd].gen != gen || e->fds[fd].type != FD_STREAM) return;
        stream_watch(e, s);
    }
    if (!(events & (EPOLLIN | EPOLLERR | EPOLLHUP))) return;
    if (s->paused) {
        if (events & (EPOLLERR | EPOLLHUP)) stream_end(e, fd, STREAM_EOF); /* gone while we were not reading */
        return;
    }
    ssize_t n = recv(fd, e->rx, STREAM_READ, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    if (n <= 0 || s->broken) return stream_end(e, fd, s->broken ? STREAM_OUT_OF_MEMORY : STREAM_EOF);
    stream_input(e, fd, s, e->rx, (size_t)n);
    if (e->fds[fd].gen == gen && e->fds[fd].type == FD_STREAM) stream_watch(e, s);
}

/* A datagram from a peer for a stream client, its header in front (queue_for_client): left in its send slot
   and written at the end of the round (flush_streams), or dropped while the client is not reading. */
static int stream_relayed(Engine *e, Entry *x, unsigned char *d, size_t n, size_t payload) {
    Stream *s = e->fds[x->out_fd].stream;
    if (s->paused) return 1;
    int q = e->squeued++;
    e->sq_stream[q] = s, e->sq_entry[q] = x, e->sq_size[q] = (unsigned)payload;
    e->sq_iov[q].iov_base = d, e->sq_iov[q].iov_len = n;
    return 1;
}

/* --- the Python methods for streams ---------------------------------------------------------------- */

static int register_fd(Engine *self, int fd, int type, PyObject *callback);
static int parse_v4(PyObject *address, uint64_t *key, struct sockaddr_in *sa);

static Stream *stream_of(Engine *self, int fd) {
    if (fd >= 0 && (size_t)fd < self->nfds && self->fds[fd].type == FD_STREAM) return self->fds[fd].stream;
    PyErr_Format(PyExc_KeyError, "descriptor %d is not a stream of this Engine", fd);
    return NULL;
}

/* add_stream(fd, callback, client or None, initial bytes, max_frame, high, low) */
static PyObject *Engine_add_stream(Engine *self, PyObject *args) {
    int fd;
    PyObject *callback, *client;
    const char *initial;
    Py_ssize_t size, max_frame, high, low;
    if (!PyArg_ParseTuple(args, "iOOy#nnn", &fd, &callback, &client, &initial, &size, &max_frame, &high, &low))
        return NULL;
    if (!PyCallable_Check(callback)) return PyErr_Format(PyExc_TypeError, "the callback must be callable");
    if (max_frame < 24 || high < 1 || low < 0 || low > high)
        return PyErr_Format(PyExc_ValueError, "bad stream limits (max_frame %zd, high %zd, low %zd)", max_frame, high, low);
    uint64_t key = 0;
    struct sockaddr_in sa;
    if (client != Py_None && parse_v4(client, &key, &sa)) return NULL;
    if (grow_fds(self, fd) == 0 && self->fds[fd].type != FD_NONE)
        return PyErr_Format(PyExc_ValueError, "descriptor %d is already watched", fd);
    Stream *s = calloc(1, sizeof *s);
    if (!s) return PyErr_NoMemory();
    s->fd = fd, s->client = key, s->max_frame = (size_t)max_frame, s->high = (size_t)high, s->low = (size_t)low;
    s->events = EPOLLIN;
    if (register_fd(self, fd, FD_STREAM, callback)) {
        free(s);
        return NULL;
    }
    self->fds[fd].stream = s;
    if (size > 0) {
        unsigned gen = self->fds[fd].gen;
        stream_input(self, fd, s, (const unsigned char *)initial, (size_t)size);
        if (self->fds[fd].gen == gen) stream_watch(self, s); /* else ended by what it held, and freed */
    }
    Py_RETURN_NONE;
}

/* stream_write(fd, data, always): queue and write now; False when the client is not reading and `always`
   is false (relayed data is dropped then; STUN answers are always queued), or when it could not be queued
   (the connection is then shut down and ends on its next round). */
static PyObject *Engine_stream_write(Engine *self, PyObject *args) {
    int fd, always;
    const char *data;
    Py_ssize_t size;
    if (!PyArg_ParseTuple(args, "iy#p", &fd, &data, &size, &always)) return NULL;
    Stream *s = stream_of(self, fd);
    if (!s) return NULL;
    if (s->paused && !always) Py_RETURN_FALSE;
    flush(self); /* what was queued earlier in this round goes first */
    if (s->broken || append(&s->out, &s->outlen, &s->outcap, (const unsigned char *)data, (size_t)size)) {
        stream_break(s); /* not queued: nothing after it may be either */
        stream_pace(s);
        stream_watch(self, s);
        Py_RETURN_FALSE;
    }
    stream_send(s);
    stream_watch(self, s);
    Py_RETURN_TRUE;
}

/* stream_state(fd) -> (paused, input bytes held, output bytes pending) */
static PyObject *Engine_stream_state(Engine *self, PyObject *args) {
    int fd;
    if (!PyArg_ParseTuple(args, "i", &fd)) return NULL;
    Stream *s = stream_of(self, fd);
    if (!s) return NULL;
    return Py_BuildValue("(Onn)", s->paused ? Py_True : Py_False, (Py_ssize_t)s->inlen, (Py_ssize_t)pending(s));
}

/* stream_limit(fd, max_frame): the longest frame accepted from now on. */
static PyObject *Engine_stream_limit(Engine *self, PyObject *args) {
    int fd;
    Py_ssize_t max_frame;
    if (!PyArg_ParseTuple(args, "in", &fd, &max_frame)) return NULL;
    Stream *s = stream_of(self, fd);
    if (!s) return NULL;
    if (max_frame < 24) return PyErr_Format(PyExc_ValueError, "max_frame %zd", max_frame);
    s->max_frame = (size_t)max_frame;
    Py_RETURN_NONE;
}

#endif
