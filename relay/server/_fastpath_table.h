/* The Engine's state and its forwarding table, for _fastpath.c (its only includer; see its comment for what
   the module does). The table is a chained hash over fixed-size keys with a per-Engine random seed, so that
   the buckets of entries installed for different clients are not predictable from their addresses. */
#ifndef RELAY_FASTPATH_TABLE_H
#define RELAY_FASTPATH_TABLE_H

#define BATCH 64
#define SLOT 65536
#define HEADROOM 48 /* room for the longest header put in front of a payload */
#define QSLOT (HEADROOM + SLOT + 4)
/* A datagram is received into a dense slot of SMALL bytes (every datagram an Ethernet MTU carries) and only
   its tail, if any, into the large slot's second iovec: the pages a batch touches are then 2 x 100 KiB,
   instead of a page of every 64 KiB slot (2 x 256 KiB resident after the first full batches). */
#define SMALL 1536
#define QSMALL (HEADROOM + SMALL + 4)
#define DENSE ((size_t)BATCH * (SMALL + QSMALL))
#define MAX_EVENTS 512
#define MAGIC 0x2112A442u

enum { K_CHANNEL_OUT = 1, K_PERMIT_OUT, K_CHANNEL_IN, K_PERMIT_IN };
enum { FD_NONE = 0, FD_PYTHON, FD_LISTENER, FD_RELAY, FD_STREAM };

typedef struct {
    uint64_t a;      /* client or peer: the first 8 bytes of its sockaddr_in */
    uint32_t b;      /* peer IPv4 address (network order) for permissions */
    int32_t fd;      /* listener (OUT kinds) or relay socket (IN kinds) */
    uint16_t number; /* channel (CHANNEL_OUT) */
    uint16_t kind;
    uint32_t zero;
} Key;

typedef struct Entry {
    struct Entry *next;
    Key key;
    int out_fd;              /* relay socket (OUT kinds) or listener (IN kinds) */
    struct sockaddr_in dest; /* peer (CHANNEL_OUT) or client (IN kinds) */
    uint16_t number;         /* channel put in front (CHANNEL_IN) */
    uint8_t tid[12];         /* Data-indication transaction id (PERMIT_IN) */
    unsigned long long packets, bytes;
} Entry;

struct Stream; /* a TCP client connection (_fastpath_stream.h) */

typedef struct {
    int type;
    unsigned refs; /* entries naming this descriptor */
    unsigned gen;  /* bumped whenever the descriptor is forgotten: a callback may close what is being read */
    PyObject *callback;
    struct Stream *stream; /* FD_STREAM only */
} FdInfo;

typedef struct {
    PyObject_HEAD
    int epfd;
    uint64_t seed;
    Entry **buckets;
    size_t nbuckets, count;
    FdInfo *fds;
    size_t nfds;
    /* listener receive */
    unsigned char *rx, *dense; /* large slots; the dense small ones (BATCH x SMALL, then BATCH x QSMALL) */
    struct mmsghdr rmsg[BATCH];
    struct iovec riov[2 * BATCH];
    struct sockaddr_in rname[BATCH];
    /* peer -> client queue */
    unsigned char *tx;
    struct mmsghdr qmsg[BATCH];
    struct iovec qiov[BATCH];
    int qfd[BATCH];
    Entry *qentry[BATCH];
    unsigned qsize[BATCH];
    int queued, slots; /* messages queued; send slots holding received datagrams */
    struct mmsghdr pmsg[BATCH];
    struct iovec piov[2 * BATCH];
    struct sockaddr_in pfrom[BATCH];
    /* peer -> stream client queue: datagrams left in their send slots, header in front, written by flush() */
    struct Stream *sq_stream[BATCH];
    struct iovec sq_iov[BATCH];
    Entry *sq_entry[BATCH];
    unsigned sq_size[BATCH];
    int squeued;
    /* per poll call */
    unsigned long long up_packets, up_bytes, down_packets, down_bytes;
} Engine;

static uint32_t crc_table[256];

static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

static uint32_t crc32_of(const unsigned char *p, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    while (n--) c = crc_table[(c ^ *p++) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

static inline uint16_t be16(const unsigned char *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline void put16(unsigned char *p, unsigned v) { p[0] = (unsigned char)(v >> 8), p[1] = (unsigned char)v; }

/* --- the table ------------------------------------------------------------------------------------ */

static inline Key make_key(int kind, int fd, uint64_t a, uint32_t b, unsigned number) {
    Key k;
    memset(&k, 0, sizeof k);
    k.kind = (uint16_t)kind, k.fd = fd, k.a = a, k.b = b, k.number = (uint16_t)number;
    return k;
}

static inline size_t slot_of(const Engine *e, const Key *k) {
    uint64_t x = k->a ^ e->seed ^ ((uint64_t)k->b << 32 | (uint32_t)k->fd) * 0x9E3779B97F4A7C15ull;
    x ^= (uint64_t)k->number << 48 | (uint64_t)k->kind << 32;
    x ^= x >> 30, x *= 0xBF58476D1CE4E5B9ull, x ^= x >> 27, x *= 0x94D049BB133111EBull, x ^= x >> 31;
    return (size_t)x & (e->nbuckets - 1);
}

static Entry *find(const Engine *e, const Key *k) {
    for (Entry *x = e->buckets[slot_of(e, k)]; x; x = x->next)
        if (!memcmp(&x->key, k, sizeof *k)) return x;
    return NULL;
}

static int grow_fds(Engine *e, int fd) {
    if (fd < 0) return -1;
    if ((size_t)fd < e->nfds) return 0;
    size_t n = e->nfds ? e->nfds : 256;
    while (n <= (size_t)fd) n *= 2;
    FdInfo *fds = realloc(e->fds, n * sizeof *fds);
    if (!fds) return -1;
    memset(fds + e->nfds, 0, (n - e->nfds) * sizeof *fds);
    e->fds = fds, e->nfds = n;
    return 0;
}

static int rehash(Engine *e) {
    size_t n = e->nbuckets * 2;
    Entry **b = calloc(n, sizeof *b);
    if (!b) return -1;
    Entry **old = e->buckets;
    size_t oldn = e->nbuckets;
    e->buckets = b, e->nbuckets = n;
    for (size_t i = 0; i < oldn; i++)
        for (Entry *x = old[i], *next; x; x = next) {
            next = x->next;
            size_t s = slot_of(e, &x->key);
            x->next = b[s], b[s] = x;
        }
    free(old);
    return 0;
}

static void unref(Engine *e, int fd) {
    if (fd >= 0 && (size_t)fd < e->nfds && e->fds[fd].refs) e->fds[fd].refs--;
}

/* Insert or replace; a replaced entry keeps its counters only when its value is unchanged (the
   mirror never rewrites an unchanged entry). */
static Entry *insert(Engine *e, const Key *k, int out_fd) {
    if (grow_fds(e, k->fd) || grow_fds(e, out_fd)) return NULL;
    Entry *x = find(e, k);
    if (x) {
        unref(e, x->out_fd);
    } else {
        if (e->count + 1 > e->nbuckets && rehash(e)) return NULL;
        x = calloc(1, sizeof *x);
        if (!x) return NULL;
        x->key = *k;
        size_t s = slot_of(e, k);
        x->next = e->buckets[s], e->buckets[s] = x;
        e->count++;
        e->fds[k->fd].refs++;
    }
    x->out_fd = out_fd;
    e->fds[out_fd].refs++;
    x->packets = x->bytes = 0;
    return x;
}

static int erase(Engine *e, const Key *k) {
    for (Entry **p = &e->buckets[slot_of(e, k)]; *p; p = &(*p)->next)
        if (!memcmp(&(*p)->key, k, sizeof *k)) {
            Entry *x = *p;
            *p = x->next;
            unref(e, x->key.fd), unref(e, x->out_fd);
            free(x);
            e->count--;
            return 1;
        }
    return 0;
}

/* Every entry naming `fd` goes (a socket closed while entries still name it: its number may be reused). */
static void purge_fd(Engine *e, int fd) {
    if (fd < 0 || (size_t)fd >= e->nfds || !e->fds[fd].refs) return;
    for (size_t i = 0; i < e->nbuckets; i++)
        for (Entry **p = &e->buckets[i]; *p;) {
            Entry *x = *p;
            if (x->key.fd == fd || x->out_fd == fd) {
                *p = x->next;
                unref(e, x->key.fd), unref(e, x->out_fd);
                free(x);
                e->count--;
            } else {
                p = &x->next;
            }
        }
}

#endif
