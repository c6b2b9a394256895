/* pcap.c — decrypted traffic as synthetic TCP packets (transcript.h), so
 * that Wireshark's HTTP dissector and "Follow TCP stream" read it.
 *
 * Each connection becomes one TCP stream between the real client address
 * and port and the real upstream address and port (the address the client
 * asked for when the upstream is unknown; 0.0.0.0 or :: when that is a
 * name). A client and upstream of different families are both written as
 * IPv6 (IPv4-mapped). The stream opens with SYN, SYN-ACK, ACK when its
 * first data is recorded, carries each on_data chunk in one segment (or
 * several, when it is larger than an IP packet can carry: 65495 bytes of
 * TCP payload over IPv4, 65515 over IPv6; a capture taken with
 * segmentation offload looks the same) with correct sequence and
 * acknowledgement numbers, and ends with FIN-ACK both ways and a last ACK
 * on close. Timestamps are when the data was seen.
 *
 * Checksums: the IPv4 header checksum is computed (20 bytes); the TCP
 * checksum is left 0. It is a sum over every payload byte recorded, the
 * only pass over the data besides copying it, and no reader needs it:
 * Wireshark and tshark do not verify TCP checksums unless asked to
 * (tcp.check_checksum is off by default, because captures taken where the
 * NIC computes checksums are full of "wrong" ones), and reassembly, "Follow
 * TCP stream" and TLS decryption with the key log work the same (the tests
 * decrypt our captures with tshark). With validation switched on, Wireshark
 * marks our segments as it marks any capture of locally sent traffic.
 *
 * Data that arrives before the upstream address is known (a plain-HTTP
 * request is read before the proxy connects) waits in a bounded per-conn
 * buffer; past PCAP_MAX_PENDING the stream starts with the fallback address.
 *
 * Packets are built on the connection's own thread, laid out as records of
 * the file, straight into the writer's chunk of that thread
 * (tr_writer_reserve: no allocation per event); the writer thread appends
 * the chunks it finds with one writev(2) (pcap_sink_write_list says why
 * not pcap_dump()). PCAP never caps bodies.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "filters/util/log.h"
#include "filters/transcript/transcript.h"
#include "filters/transcript/transcript_internal.h"

/* libpcap's largest snapshot length: a full-size IP packet (65535 bytes)
 * in its Ethernet frame is more than 65535. */
#define PCAP_SNAPLEN 262144
/* TCP payload of the largest IP packet: the IPv4 total length (IP header
 * included) and the IPv6 payload length (TCP header included) are 16 bits. */
#define PCAP_SEG_MAX_V4 (65535 - 20 - 20)
#define PCAP_SEG_MAX_V6 (65535 - 20)
#define PCAP_MAX_HEADERS (14 + 40 + 20) /* Ethernet, IPv6, TCP */
#define PCAP_MAX_PENDING (4u * 1024 * 1024)
/* Jobs handed to one writev(2). */
#define PCAP_IOV_BATCH 256

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_PSH 0x08
#define TCP_ACK 0x10

typedef struct flt_pcap {
  int slot;
  char path[512];
  pcap_t *dead;          /* only for pcap_dump_fopen's link type */
  pcap_dumper_t *dumper; /* wrote the file header; closes the file */
  int fd;                /* the dumper's file: packet records (writer thread) */
  off_t size;            /* bytes in the file (writer thread) */
  tr_out_t out;
  tr_writer_t *w;
} flt_pcap_t;

/* A packet record's header as it is in the file: libpcap's own struct
 * pcap_sf_pkthdr (private to libpcap), which pcap_dump() writes in host
 * byte order, like the file header: seconds and microseconds as 32-bit
 * signed numbers, then the captured and the original length. */
typedef struct pc_rec_hdr {
  int32_t ts_sec;
  int32_t ts_usec;
  uint32_t caplen;
  uint32_t len;
} pc_rec_hdr_t;

typedef struct pc_conn {
  int started;
  int v6;
  uint8_t ip[2][16]; /* by flt_dir_t: [0] client, [1] server */
  uint16_t port[2];
  uint32_t next_seq[2]; /* next sequence number each side sends */
  uint16_t ip_id[2];
  flt_strbuf_t pending; /* pc_pending_t records before started */
} pc_conn_t;

typedef struct pc_pending {
  uint64_t ts;
  uint32_t len;
  uint8_t dir;
} pc_pending_t;

/* Where one event's records go: room reserved in the writer's chunk
 * (tr_writer_reserve). */
typedef struct pc_job {
  char *data; /* records: [pc_rec_hdr_t][frame] ... */
  size_t len, size; /* bytes in data; room */
} pc_job_t;

/* ---- addresses ----------------------------------------------------------- */

typedef struct pc_addr {
  int family; /* AF_INET, AF_INET6, or 0 when unknown */
  uint8_t ip[16];
  uint16_t port;
} pc_addr_t;

/* "1.2.3.4:80", "[::1]:80", or a bare address with `port` given. */
static int pc_parse_ip(const char *s, size_t n, pc_addr_t *a) {
  char buf[64];
  char *pct;

  if (n >= sizeof(buf)) return -1;
  memcpy(buf, s, n);
  buf[n] = '\0';
  if ((pct = strchr(buf, '%')) != NULL) *pct = '\0'; /* scope id */
  if (inet_pton(AF_INET, buf, a->ip) == 1)
    a->family = AF_INET;
  else if (inet_pton(AF_INET6, buf, a->ip) == 1)
    a->family = AF_INET6;
  else
    return -1;
  return 0;
}

static int pc_parse_hostport(const char *s, pc_addr_t *a) {
  const char *colon = strrchr(s, ':');
  const char *host = s;
  size_t n;

  if (colon == NULL) return -1;
  n = (size_t)(colon - s);
  if (s[0] == '[') {
    if (n < 2 || s[n - 1] != ']') return -1;
    host = s + 1;
    n -= 2;
  }
  a->port = (uint16_t)strtoul(colon + 1, NULL, 10);
  return pc_parse_ip(host, n, a);
}

/* The upstream's address: connected address, else the host asked for when
 * it is an IP literal; with `fallback`, the unspecified address. */
static int pc_server_addr(const flt_conn_t *c, int fallback, pc_addr_t *a) {
  size_t n = strlen(c->server_host);
  const char *h = c->server_host;

  memset(a, 0, sizeof(*a));
  if (c->server_addr[0] && pc_parse_hostport(c->server_addr, a) == 0) return 0;
  if (n > 2 && h[0] == '[' && h[n - 1] == ']') h++, n -= 2;
  a->port = c->server_port;
  if (pc_parse_ip(h, n, a) == 0) return 0;
  if (!fallback) return -1;
  memset(a->ip, 0, sizeof(a->ip));
  a->family = 0; /* takes the client's family */
  return 0;
}

/* IPv4 as ::ffff:a.b.c.d (RFC 4291 §2.5.5.2); unknown as ::. */
static void pc_to_v6(pc_addr_t *a) {
  if (a->family == AF_INET) {
    memmove(a->ip + 12, a->ip, 4);
    memset(a->ip, 0, 10);
    a->ip[10] = a->ip[11] = 0xff;
  } else if (a->family != AF_INET6) {
    memset(a->ip, 0, sizeof(a->ip));
  }
  a->family = AF_INET6;
}

/* Fills pc's addresses; -1 while the upstream is not known yet. */
static int pc_resolve(pc_conn_t *pc, const flt_conn_t *c, int fallback) {
  pc_addr_t cl = {0}, sv;

  if (pc_parse_hostport(c->client, &cl) < 0) cl.family = 0;
  if (pc_server_addr(c, fallback, &sv) < 0) return -1;
  if (cl.family == 0) cl.family = sv.family ? sv.family : AF_INET;
  if (sv.family == 0) sv.family = cl.family;
  pc->v6 = cl.family == AF_INET6 || sv.family == AF_INET6;
  if (pc->v6) {
    pc_to_v6(&cl);
    pc_to_v6(&sv);
  }
  memcpy(pc->ip[0], cl.ip, 16);
  memcpy(pc->ip[1], sv.ip, 16);
  pc->port[0] = cl.port;
  pc->port[1] = sv.port;
  return 0;
}

/* ---- packets ------------------------------------------------------------- */

static void put16(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v) {
  put16(p, v >> 16);
  put16(p + 2, v & 0xffff);
}

/* RFC 1071 sum of the big-endian 16-bit words of p[0..n), n even. */
static uint32_t csum_add(uint32_t sum, const uint8_t *p, size_t n) {
  for (size_t i = 0; i + 1 < n; i += 2)
    sum += (uint32_t)(p[i] << 8 | p[i + 1]);
  return sum;
}

static uint16_t csum_fold(uint32_t sum) {
  while (sum >> 16)
    sum = (sum & 0xffff) + (sum >> 16);
  return (uint16_t)~sum;
}

/* Writes the IP header for `tcp_len` bytes of TCP at p; returns its size. */
static size_t pc_ip_header(pc_conn_t *pc, flt_dir_t dir, uint8_t *p, size_t tcp_len) {
  const uint8_t *src = pc->ip[dir], *dst = pc->ip[!dir];

  if (pc->v6) {
    put32(p, 0x60000000u);
    put16(p + 4, (uint32_t)tcp_len);
    p[6] = 6;  /* next header: TCP */
    p[7] = 64; /* hop limit */
    memcpy(p + 8, src, 16);
    memcpy(p + 24, dst, 16);
    return 40;
  }
  p[0] = 0x45;
  p[1] = 0;
  put16(p + 2, (uint32_t)(20 + tcp_len));
  put16(p + 4, pc->ip_id[dir]++);
  put16(p + 6, 0x4000); /* don't fragment */
  p[8] = 64;
  p[9] = 6;
  put16(p + 10, 0);
  memcpy(p + 12, src, 4);
  memcpy(p + 16, dst, 4);
  put16(p + 10, csum_fold(csum_add(0, p, 20)));
  return 20;
}

/* Appends one segment from side `dir` to the batch, as a record of the
 * file, and advances its sequence number. The payload is copied once,
 * from `data` straight into the batch. */
static void pc_segment(pc_conn_t *pc, pc_job_t *batch, flt_dir_t dir, uint8_t flags,
                       const uint8_t *data, size_t len, uint64_t ts) {
  uint8_t pkt[PCAP_MAX_HEADERS];
  pc_rec_hdr_t rec;
  size_t ip_len, n;
  uint8_t *tcp;

  /* Ethernet: locally administered MACs, 02:..:01 client, 02:..:02 server. */
  memset(pkt, 0, 12);
  pkt[0] = pkt[6] = 0x02;
  pkt[5] = dir == FLT_DIR_REQUEST ? 2 : 1;
  pkt[11] = dir == FLT_DIR_REQUEST ? 1 : 2;
  put16(pkt + 12, pc->v6 ? 0x86dd : 0x0800);
  ip_len = pc_ip_header(pc, dir, pkt + 14, 20 + len);
  tcp = pkt + 14 + ip_len;
  put16(tcp, pc->port[dir]);
  put16(tcp + 2, pc->port[!dir]);
  put32(tcp + 4, pc->next_seq[dir]);
  put32(tcp + 8, (flags & TCP_ACK) ? pc->next_seq[!dir] : 0);
  tcp[12] = 5 << 4; /* 20-byte header, no options */
  tcp[13] = flags;
  put16(tcp + 14, 65535); /* window */
  put16(tcp + 16, 0);     /* checksum: not computed, see the top of the file */
  put16(tcp + 18, 0);
  n = 14 + ip_len + 20;

  pc->next_seq[dir] += (uint32_t)len + ((flags & (TCP_SYN | TCP_FIN)) ? 1 : 0);
  rec.ts_sec = (int32_t)(ts / 1000000u); /* what pcap_dump() does with a time_t */
  rec.ts_usec = (int32_t)(ts % 1000000u);
  rec.caplen = rec.len = (uint32_t)(n + len);
  if (batch->size - batch->len < sizeof(rec) + n + len) return; /* cannot be: pc_batch_size */
  memcpy(batch->data + batch->len, &rec, sizeof(rec));
  memcpy(batch->data + batch->len + sizeof(rec), pkt, n);
  if (len) memcpy(batch->data + batch->len + sizeof(rec) + n, data, len);
  batch->len += sizeof(rec) + n + len;
}

static size_t pc_seg_max(const pc_conn_t *pc) {
  return pc->v6 ? PCAP_SEG_MAX_V6 : PCAP_SEG_MAX_V4;
}

/* Bytes that `len` bytes of data take in a batch, at most. */
static size_t pc_batch_size(size_t len) {
  size_t segs = len / PCAP_SEG_MAX_V4 + 1;
  return len + segs * (sizeof(pc_rec_hdr_t) + PCAP_MAX_HEADERS);
}

/* Room for the handshake (or the closing segments) and everything pending.
 * Each pending chunk is its data after a pc_pending_t, and becomes one
 * segment per PCAP_SEG_MAX_V4 bytes or less: the headers of one segment
 * per sizeof(pc_pending_t) pending bytes are more than enough. */
static size_t pc_setup_size(const pc_conn_t *pc) {
  size_t n = 3 * (sizeof(pc_rec_hdr_t) + PCAP_MAX_HEADERS);
  if (!pc->started)
    n += pc->pending.len + (pc->pending.len / sizeof(pc_pending_t) + 1) *
                               (sizeof(pc_rec_hdr_t) + PCAP_MAX_HEADERS);
  return n;
}

static void pc_data(pc_conn_t *pc, pc_job_t *batch, flt_dir_t dir, const uint8_t *data,
                    size_t len, uint64_t ts) {
  size_t max = pc_seg_max(pc);

  while (len > 0) {
    size_t n = len < max ? len : max;
    pc_segment(pc, batch, dir, TCP_ACK | (n == len ? TCP_PSH : 0), data, n, ts);
    data += n;
    len -= n;
  }
}

/* SYN, SYN-ACK, ACK, then whatever waited for the address. */
static void pc_start(pc_conn_t *pc, const flt_conn_t *c, pc_job_t *batch, uint64_t ts) {
  /* Deterministic initial sequence numbers: reruns give equal files. */
  uint32_t isn = (uint32_t)(c->id * 2654435761u) ^ 0x1000u;
  const char *p = pc->pending.data;
  size_t left = pc->pending.len;

  /* The handshake goes before the oldest data that waited for it. */
  if (left >= sizeof(pc_pending_t)) {
    pc_pending_t first;
    memcpy(&first, p, sizeof(first));
    ts = first.ts;
  }
  pc->started = 1;
  pc->next_seq[FLT_DIR_REQUEST] = isn;
  pc->next_seq[FLT_DIR_RESPONSE] = isn ^ 0x5bd1e995u;
  pc_segment(pc, batch, FLT_DIR_REQUEST, TCP_SYN, NULL, 0, ts);
  pc_segment(pc, batch, FLT_DIR_RESPONSE, TCP_SYN | TCP_ACK, NULL, 0, ts);
  pc_segment(pc, batch, FLT_DIR_REQUEST, TCP_ACK, NULL, 0, ts);
  while (left >= sizeof(pc_pending_t)) {
    pc_pending_t rec;
    memcpy(&rec, p, sizeof(rec));
    p += sizeof(rec);
    left -= sizeof(rec);
    if (rec.len > left) break;
    pc_data(pc, batch, (flt_dir_t)rec.dir, (const uint8_t *)p, rec.len, rec.ts);
    p += rec.len;
    left -= rec.len;
  }
  flt_strbuf_free(&pc->pending);
}

/* ---- the writer side ------------------------------------------------------ */

/* The writer appends the records with tr_out_write (trout.c: O_DIRECT
 * for the whole pages where it can), straight from the jobs, instead
 * of handing each packet to pcap_dump(): that copies every packet into
 * stdio's 4 KiB buffer and writes the file 4 KiB at a time, at
 * offsets that are not page-aligned, and on ext4 each such write first
 * zeroes the part of a fresh page it does not cover. Measured on a bulk
 * download, that zeroing alone cost three quarters of what copying the
 * data into the page cache did, and the stdio copy came on top. The
 * bytes are the ones pcap_dump() writes (pc_rec_hdr_t, then the frame), and
 * libpcap still writes the file header (pcap_dump_fopen, in flt_pcap_new),
 * whose stdio buffer is empty from then on. */
static int pcap_sink_write_list(void *sink, tr_job_t *list) {
  flt_pcap_t *pcap = sink;
  struct iovec iov[PCAP_IOV_BATCH];

  while (list) {
    int n = 0;
    off_t bytes = 0;
    for (; list && n < PCAP_IOV_BATCH; list = list->next) {
      tr_chunk_t *c = (tr_chunk_t *)list;
      iov[n].iov_base = c->data;
      iov[n].iov_len = c->len;
      bytes += (off_t)c->len;
      n++;
    }
    int rc = tr_out_write(&pcap->out, iov, n, pcap->size, pcap->size + bytes);
    if (rc) return rc;
    pcap->size += bytes;
  }
  return 0;
}

static void pcap_job_free(tr_job_t *job) {
  free(job); /* not reached: every job is a chunk */
}

static const tr_sink_ops_t pcap_sink = {
    .write_list = pcap_sink_write_list,
    .free_job = pcap_job_free,
};

/* Room for `size` bytes of records in this thread's chunk; 0, or -1 when
 * the writer failed or is full (its warning says so). */
static int pc_job_begin(flt_pcap_t *pcap, pc_job_t *j, size_t size, uint64_t ts) {
  j->data = tr_writer_reserve(pcap->w, size, ts);
  j->len = 0;
  j->size = size;
  return j->data ? 0 : -1;
}

static void pc_job_end(flt_pcap_t *pcap, pc_job_t *j) {
  tr_writer_commit(pcap->w, j->len);
}

/* ---- events -------------------------------------------------------------- */

static pc_conn_t *pc_conn_of(flt_pcap_t *pcap, flt_conn_t *c, int create) {
  pc_conn_t *pc;

  if (pcap->slot < 0) return NULL;
  pc = c->fctx[pcap->slot];
  if (pc == NULL && create) {
    pc = calloc(1, sizeof(*pc));
    if (pc == NULL) return NULL;
    flt_strbuf_init(&pc->pending, PCAP_MAX_PENDING);
    c->fctx[pcap->slot] = pc;
  }
  return pc;
}

static void on_data(void *self, flt_conn_t *c, flt_dir_t dir, const uint8_t *data, size_t len) {
  flt_pcap_t *pcap = self;
  uint64_t ts = flt_now_us();
  pc_conn_t *pc;
  pc_job_t j;

  if (len == 0 || (dir != FLT_DIR_REQUEST && dir != FLT_DIR_RESPONSE) ||
      tr_writer_failed(pcap->w) || (pc = pc_conn_of(pcap, c, 1)) == NULL)
    return;
  if (!pc->started && pc_resolve(pc, c, 0) < 0) {
    pc_pending_t rec = {.ts = ts, .len = (uint32_t)len, .dir = (uint8_t)dir};
    if (len <= UINT32_MAX && PCAP_MAX_PENDING - pc->pending.len >= sizeof(rec) + len) {
      flt_strbuf_append(&pc->pending, &rec, sizeof(rec));
      flt_strbuf_append(&pc->pending, data, len);
      return;
    }
    pc_resolve(pc, c, 1); /* waited long enough: use the fallback */
  }
  if (pc_job_begin(pcap, &j, pc_batch_size(len) + (pc->started ? 0 : pc_setup_size(pc)), ts) < 0)
    return;
  if (!pc->started) pc_start(pc, c, &j, ts);
  pc_data(pc, &j, dir, data, len, ts);
  pc_job_end(pcap, &j);
}

static void on_conn_close(void *self, flt_conn_t *c) {
  flt_pcap_t *pcap = self;
  pc_conn_t *pc = pc_conn_of(pcap, c, 0);
  uint64_t ts = flt_now_us();
  pc_job_t j;

  if (pc == NULL) return;
  c->fctx[pcap->slot] = NULL;
  if (!tr_writer_failed(pcap->w) && (pc->started || pc->pending.len > 0) &&
      pc_job_begin(pcap, &j, pc_setup_size(pc) + 3 * (sizeof(pc_rec_hdr_t) + PCAP_MAX_HEADERS),
                   ts) == 0) {
    if (!pc->started && pc_resolve(pc, c, 1) == 0) pc_start(pc, c, &j, ts);
    if (pc->started) {
      pc_segment(pc, &j, FLT_DIR_REQUEST, TCP_FIN | TCP_ACK, NULL, 0, ts);
      pc_segment(pc, &j, FLT_DIR_RESPONSE, TCP_FIN | TCP_ACK, NULL, 0, ts);
      pc_segment(pc, &j, FLT_DIR_REQUEST, TCP_ACK, NULL, 0, ts);
    }
    pc_job_end(pcap, &j);
  }
  flt_strbuf_free(&pc->pending);
  free(pc);
}

static void on_shutdown(void *self) {
  flt_pcap_t *pcap = self;
  tr_writer_flush(pcap->w);
}

/* ---- instance ------------------------------------------------------------- */

void *flt_pcap_new(const char *path, char *err, size_t errlen) {
  flt_pcap_t *pcap = calloc(1, sizeof(*pcap));
  FILE *fp = NULL;

  if (pcap == NULL) {
    snprintf(err, errlen, "PCAP file %s: out of memory", path);
    return NULL;
  }
  pcap->slot = -1;
  snprintf(pcap->path, sizeof(pcap->path), "%s", path);
  /* Our own open (not pcap_dump_open's fopen): created 0600, see tr_open. */
  int fd = tr_open("PCAP file", path, O_WRONLY | O_TRUNC, 0600, err, errlen);
  if (fd < 0) goto fail;
  fp = fdopen(fd, "wb");
  if (fp == NULL) {
    snprintf(err, errlen, "cannot open PCAP file %s: %s", path, strerror(errno));
    close(fd);
    goto fail;
  }
  pcap->dead = pcap_open_dead(DLT_EN10MB, PCAP_SNAPLEN);
  pcap->dumper = pcap->dead ? pcap_dump_fopen(pcap->dead, fp) : NULL;
  if (pcap->dumper == NULL) {
    snprintf(err, errlen, "PCAP file %s: %s", path,
             pcap->dead ? pcap_geterr(pcap->dead) : "out of memory");
    goto fail;
  }
  fp = NULL; /* the dumper owns it now */
  errno = 0;
  if (pcap_dump_flush(pcap->dumper) < 0) {
    snprintf(err, errlen, "cannot write PCAP file %s: %s", path, strerror(errno ? errno : EIO));
    goto fail;
  }
  pcap->fd = fileno(pcap_dump_file(pcap->dumper)); /* see pcap_sink_write_list */
  pcap->size = lseek(pcap->fd, 0, SEEK_CUR);
  tr_out_init(&pcap->out, pcap->fd, pcap->size);
  pcap->w = tr_writer_new("PCAP file", path, &pcap_sink, pcap, err, errlen);
  if (pcap->w == NULL) {
    tr_out_free(&pcap->out);
    goto fail;
  }
  return pcap;
fail:
  if (fp) fclose(fp);
  if (pcap->dumper) pcap_dump_close(pcap->dumper);
  if (pcap->dead) pcap_close(pcap->dead);
  free(pcap);
  return NULL;
}

void flt_pcap_set_slot(void *self, int slot) {
  flt_pcap_t *pcap = self;
  pcap->slot = slot >= 0 && slot < FLT_MAX_FILTERS ? slot : -1;
}

void flt_pcap_free(void *self) {
  flt_pcap_t *pcap = self;

  if (pcap == NULL) return;
  tr_writer_free(pcap->w);
  tr_out_free(&pcap->out);
  /* A failed sink was already reported; this close adds nothing new. */
  pcap_dump_close(pcap->dumper);
  pcap_close(pcap->dead);
  free(pcap);
}

const flt_ops_t flt_pcap_ops = {
    .abi_version = FLT_ABI_VERSION,
    .name = "pcap",
    .on_data = on_data,
    .on_conn_close = on_conn_close,
    .on_shutdown = on_shutdown,
};
