/* test_transcript_pcap.c — the recording filters (filters/transcript/transcript.h)
 * where a PCAP is written: all formats at once, segments larger than an IP
 * packet, concurrent connections and write-behind, driven through a real
 * chain with synthetic connections and flows; every packet is read back
 * with libpcap (and tshark when it is installed), HAR and JSON lines with
 * cJSON. The other record checks are in test_transcript.c. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <fcntl.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "filters/util/strbuf.h"
#include "filters/transcript/transcript.h"
#include "tests/unit/filters/transcript/fixtures/transcriptfixtures.h"

/* ---- JSONL checks ---------------------------------------------------------- */

static void check_jsonl(const char *path, int n) {
  char *text = slurp(path, NULL), *line = text;
  int i = 0;

  for (char *end; (end = strchr(line, '\n')) != NULL; line = end + 1, i++) {
    *end = '\0';
    cJSON *o = cJSON_Parse(line);
    if (o == NULL) fail_msg("line %d is not JSON: %s", i, line);
    assert_int_equal((int)get_num(o, "id"), i + 1);
    get_num(o, "conn");
    get_str(o, "client");
    get_str(o, "server");
    get_str(o, "started");
    assert_string_equal(get_str(o, "url"), flows[i].url);
    assert_string_equal(get_str(o, "method"), flows[i].method);
    assert_int_equal((int)get_num(o, "status"), flows[i].status);
    get_str(o, "reason");
    const cJSON *rq = get(o, "request"), *rs = get(o, "response");
    check_nv_array(get(rq, "headers"));
    get_str(rq, "body");
    get_num(get(o, "timings"), "total");
    if (flows[i].error) {
      assert_true(cJSON_IsNull(rs));
      assert_string_equal(get_str(o, "error"), flows[i].error);
    } else {
      assert_true(cJSON_IsNull(get(o, "error")));
      assert_true(cJSON_IsBool(get(rs, "bodyTruncated")));
    }
    if (i == 2) assert_string_equal(get_str(rs, "bodyEncoding"), "base64");
    if (i == 1) assert_string_equal(get_str(rs, "body"), long_text);
    if (i == 6) {
      assert_string_equal(get_str(get(o, "tls"), "cipher"), "TLS_AES_128_GCM_SHA256");
      assert_string_equal(get_str(o, "client"), "[::1]:5555");
    } else {
      assert_true(cJSON_IsNull(get(o, "tls")));
    }
    cJSON_Delete(o);
  }
  assert_int_equal(i, n);
  free(text);
}

/* ---- PCAP checks ------------------------------------------------------------ */

typedef struct stream {
  char addr[2][64]; /* "ip port" of client and server, from the SYN */
  uint16_t cport;
  int v6, packets, fins;
  uint32_t next[2]; /* 0 client->server, 1 server->client */
  flt_strbuf_t bytes[2];
} stream_t;

/* TCP payload of the largest IPv4 and IPv6 packet. */
#define SEG_MAX_V4 (65535u - 20 - 20)
#define SEG_MAX_V6 (65535u - 20)

static uint16_t rd16(const uint8_t *p) {
  return (uint16_t)(p[0] << 8 | p[1]);
}
static uint32_t rd32(const uint8_t *p) {
  return (uint32_t)rd16(p) << 16 | rd16(p + 2);
}

static uint16_t sum16(uint32_t sum, const uint8_t *p, size_t n) {
  for (size_t i = 0; i + 1 < n; i += 2)
    sum += rd16(p + i);
  if (n & 1) sum += (uint32_t)p[n - 1] << 8;
  while (sum >> 16)
    sum = (sum & 0xffff) + (sum >> 16);
  return (uint16_t)sum;
}

/* Checks one packet and follows its stream's sequence numbers. */
static void check_packet(stream_t *streams, int *n_streams, const uint8_t *p, size_t len) {
  int v6 = rd16(p + 12) == 0x86dd;
  size_t ip_len = v6 ? 40 : 20, alen = v6 ? 16 : 4;
  const uint8_t *ip = p + 14, *tcp = ip + ip_len;
  const uint8_t *src = ip + (v6 ? 8 : 12), *dst = src + alen;
  size_t tcp_len = len - 14 - ip_len, payload = tcp_len - 20;

  assert_true(v6 || rd16(p + 12) == 0x0800);
  if (!v6) assert_int_equal(sum16(0, ip, 20), 0xffff); /* header checksum */
  assert_int_equal(v6 ? rd16(ip + 4) : rd16(ip + 2) - 20u, tcp_len);
  assert_int_equal(rd16(tcp + 16), 0); /* TCP checksum: not computed (pcap.c says why) */
  /* As large as an IP packet allows (the IPv4 total length and the IPv6
   * payload length are 16 bits), never larger. */
  assert_true(payload <= (v6 ? SEG_MAX_V6 : SEG_MAX_V4));

  uint8_t flags = tcp[13];
  uint16_t dport = rd16(tcp + 2);
  int from_client = dport == 80 || dport == 443 || dport == 8080; /* the servers */
  uint16_t cport = from_client ? rd16(tcp) : rd16(tcp + 2);
  stream_t *s = NULL;
  for (int i = 0; i < *n_streams; i++)
    if (streams[i].cport == cport) s = &streams[i];
  if (s == NULL) { /* a new stream opens with a SYN */
    assert_int_equal(flags, 0x02);
    s = &streams[(*n_streams)++];
    memset(s, 0, sizeof(*s));
    s->cport = cport;
    s->v6 = v6;
    s->next[0] = rd32(tcp + 4);
    for (int k = 0; k < 2; k++) {
      char ipbuf[INET6_ADDRSTRLEN];
      inet_ntop(v6 ? AF_INET6 : AF_INET, k ? dst : src, ipbuf, sizeof(ipbuf));
      snprintf(s->addr[k], sizeof(s->addr[k]), "%s %u", ipbuf, rd16(tcp + 2 * k));
    }
  }
  int d = from_client ? 0 : 1;
  if (s->packets == 1) {
    assert_int_equal(flags, 0x12); /* SYN-ACK */
    s->next[1] = rd32(tcp + 4);
  }
  assert_int_equal(rd32(tcp + 4), s->next[d]);
  if (flags & 0x10) assert_int_equal(rd32(tcp + 8), s->next[!d]);
  s->next[d] += (uint32_t)payload + ((flags & 0x03) ? 1 : 0);
  if (flags & 0x01) s->fins++;
  flt_strbuf_append(&s->bytes[d], tcp + 20, payload);
  s->packets++;
}

static int expected_packets(const sent_t *s, size_t mss) {
  int n = 6; /* handshake and close */
  for (int d = 0; d < 2; d++)
    for (int i = 0; i < s->n_events[d]; i++)
      n += (int)((s->events[d][i] + mss - 1) / mss);
  return n;
}

/* Runs a shell command; returns its stdout (NULL when it fails). */
static char *run_cmd(const char *cmd) {
  FILE *p = popen(cmd, "r");
  flt_strbuf_t b;
  char chunk[4096];
  size_t n;

  if (p == NULL) return NULL;
  flt_strbuf_init(&b, 0);
  while ((n = fread(chunk, 1, sizeof(chunk), p)) > 0)
    flt_strbuf_append(&b, chunk, n);
  if (pclose(p) != 0) {
    flt_strbuf_free(&b);
    return NULL;
  }
  return flt_strbuf_detach(&b, NULL);
}

/* "tshark -z follow,tcp,raw" prints client bytes as hex lines, server
 * bytes as tab-indented hex lines. */
static void check_tshark_follow(const char *path, const sent_t *s) {
  char cmd[512];
  flt_strbuf_t got[2];
  snprintf(cmd, sizeof(cmd), "tshark -r '%s' -q -z follow,tcp,raw,0 2>/dev/null", path);
  char *out = run_cmd(cmd);
  assert_non_null(out);
  flt_strbuf_init(&got[0], 0);
  flt_strbuf_init(&got[1], 0);
  for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
    int d = line[0] == '\t';
    char *h = line + d;
    if (strspn(h, "0123456789abcdef") != strlen(h) || strlen(h) % 2) continue;
    for (size_t i = 0; h[i]; i += 2) {
      unsigned v;
      sscanf(h + i, "%2x", &v);
      uint8_t byte = (uint8_t)v;
      flt_strbuf_append(&got[d], &byte, 1);
    }
  }
  for (int d = 0; d < 2; d++) {
    assert_int_equal(got[d].len, s->bytes[d].len);
    assert_memory_equal(got[d].data, s->bytes[d].data, got[d].len);
    flt_strbuf_free(&got[d]);
  }
  free(out);
}

static void check_tshark(const char *path, const sent_t *s0) {
  char cmd[512];
  if (system("command -v tshark >/dev/null 2>&1") != 0) {
    printf("tshark is not installed: skipping the Wireshark checks\n");
    return;
  }
  snprintf(cmd, sizeof(cmd),
           "tshark -r '%s' -Y http.request "
           "-T fields -e http.request.method -e http.request.uri 2>/dev/null",
           path);
  char *out = run_cmd(cmd);
  assert_non_null(out);
  for (int i = 0; i < N_FLOWS; i++) {
    char want[256];
    snprintf(want, sizeof(want), "%s\t%s\n", flows[i].method, flows[i].target);
    if (strstr(out, want) == NULL) fail_msg("tshark did not list %s in:\n%s", want, out);
  }
  free(out);
  check_tshark_follow(path, s0);
}

/* Reads a PCAP back: every packet checked (check_packet), then stream i
 * (the one from client port cports[i]) must carry exactly sent[i], in as
 * many packets as the MSS gives, between addrs[i] (when given), and close
 * both ways. */
static void check_streams(const char *path, int n, const uint16_t *cports, sent_t *sent,
                          const char *const (*addrs)[2]) {
  char errbuf[PCAP_ERRBUF_SIZE];
  pcap_t *p = pcap_open_offline(path, errbuf);
  struct pcap_pkthdr *h;
  const u_char *data;
  stream_t streams[8];
  int n_streams = 0, total = 0, want = 0;

  if (p == NULL) fail_msg("pcap_open_offline: %s", errbuf);
  assert_int_equal(pcap_datalink(p), DLT_EN10MB);
  while (pcap_next_ex(p, &h, &data) == 1) {
    assert_int_equal(h->caplen, h->len);
    assert_true(h->ts.tv_sec >= 1700000000);
    check_packet(streams, &n_streams, data, h->caplen);
    total++;
  }
  pcap_close(p);
  assert_int_equal(n_streams, n);
  for (int k = 0; k < n; k++) {
    stream_t *s = &streams[k];
    int i = 0;
    while (i < n && cports[i] != s->cport)
      i++;
    assert_true(i < n);
    if (addrs) {
      assert_string_equal(s->addr[0], addrs[i][0]);
      assert_string_equal(s->addr[1], addrs[i][1]);
    }
    want += expected_packets(&sent[i], s->v6 ? SEG_MAX_V6 : SEG_MAX_V4);
    assert_int_equal(s->fins, 2);
    for (int d = 0; d < 2; d++) {
      assert_int_equal(s->bytes[d].len, sent[i].bytes[d].len);
      if (s->bytes[d].len)
        assert_memory_equal(s->bytes[d].data, sent[i].bytes[d].data, s->bytes[d].len);
      flt_strbuf_free(&s->bytes[d]);
    }
  }
  assert_int_equal(total, want);
}

static void check_pcap(const char *path, sent_t sent[3]) {
  static const uint16_t cports[3] = {40000, 40001, 5555};
  static const char *const addrs[3][2] = {{"127.0.0.1 40000", "93.184.216.34 80"},
                                          {"127.0.0.1 40001", "10.9.8.7 8080"},
                                          {"::1 5555", "2001:db8::1 443"}};
  check_streams(path, 3, cports, sent, addrs);
  check_tshark(path, &sent[0]);
}

/* Chunks larger than one IP packet: split into segments of the largest
 * size, and the streams still reassemble byte
 * for byte (libpcap, and tshark's Follow TCP stream when installed). */
static void test_pcap_large_segments(void **state) {
  static const size_t sizes[] = {1, SEG_MAX_V4 - 1, SEG_MAX_V4, SEG_MAX_V4 + 1, SEG_MAX_V6,
                                 SEG_MAX_V6 + 1, 3 * SEG_MAX_V6 + 17, 200000};
  static const uint16_t cports[2] = {40100, 5600};
  char path[128], err[512], errbuf[PCAP_ERRBUF_SIZE];
  flt_chain_t ch = {0};
  flt_conn_t conns[2];
  sent_t sent[2];
  size_t big = 3 * SEG_MAX_V6 + 17 + 200000;
  uint8_t *data = malloc(big);
  (void)state;

  assert_non_null(data);
  for (size_t i = 0; i < big; i++)
    data[i] = (uint8_t)(i * 131 + (i >> 8) * 7 + 1);
  path_in(path, sizeof(path), "big.pcap");
  void *pc = flt_pcap_new(path, err, sizeof(err));
  assert_non_null(pc);
  flt_pcap_set_slot(pc, flt_chain_add(&ch, &flt_pcap_ops, pc));
  memset(sent, 0, sizeof(sent));
  init_conn(&conns[0], 21, "127.0.0.1:40100", "93.184.216.34:80", 0);
  init_conn(&conns[1], 22, "[::1]:5600", "[2001:db8::1]:443", 1);
  for (int c = 0; c < 2; c++) {
    size_t off = 0;
    flt_emit_conn_open(&ch, &conns[c]);
    emit_data(&ch, &conns[c], &sent[c], FLT_DIR_REQUEST, "GET /big HTTP/1.1\r\n\r\n", 21);
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
      flt_dir_t dir = k % 3 == 2 ? FLT_DIR_REQUEST : FLT_DIR_RESPONSE;
      emit_data(&ch, &conns[c], &sent[c], dir, data + off % 1000, sizes[k]);
      off += sizes[k];
    }
    flt_emit_conn_close(&ch, &conns[c]);
  }
  flt_emit_shutdown(&ch);
  flt_pcap_free(pc);

  /* The file header says what the frames need: a full IP packet plus its
   * Ethernet header is more than 65535 bytes. */
  pcap_t *p = pcap_open_offline(path, errbuf);
  if (p == NULL) fail_msg("pcap_open_offline: %s", errbuf);
  assert_true(pcap_snapshot(p) >= 14 + 40 + 65535);
  pcap_close(p);
  check_streams(path, 2, cports, sent, NULL);
  if (system("command -v tshark >/dev/null 2>&1") == 0)
    check_tshark_follow(path, &sent[0]);
  for (int c = 0; c < 2; c++) {
    flt_strbuf_free(&sent[c].bytes[0]);
    flt_strbuf_free(&sent[c].bytes[1]);
  }
  free(data);
}

/* ---- the scenario: all three formats at once -------------------------------- */

/* HAR, JSONL and PCAP sinks on STEM.har/.jsonl/.pcap, added to `ch`. */
typedef struct sinks {
  char har_path[128], jl_path[128], pc_path[128];
  void *har, *jl, *pc;
} sinks_t;

static void sinks_open(sinks_t *k, flt_chain_t *ch, const char *stem) {
  char name[64], err[512];
  snprintf(name, sizeof(name), "%s.har", stem);
  path_in(k->har_path, sizeof(k->har_path), name);
  snprintf(name, sizeof(name), "%s.jsonl", stem);
  path_in(k->jl_path, sizeof(k->jl_path), name);
  snprintf(name, sizeof(name), "%s.pcap", stem);
  path_in(k->pc_path, sizeof(k->pc_path), name);
  k->har = flt_har_new(k->har_path, 1 << 20, "9.9-test", err, sizeof(err));
  k->jl = flt_jsonl_new(k->jl_path, 1 << 20, err, sizeof(err));
  k->pc = flt_pcap_new(k->pc_path, err, sizeof(err));
  assert_true(k->har && k->jl && k->pc);
  flt_har_set_slot(k->har, flt_chain_add(ch, &flt_har_ops, k->har));
  flt_jsonl_set_slot(k->jl, flt_chain_add(ch, &flt_jsonl_ops, k->jl));
  flt_pcap_set_slot(k->pc, flt_chain_add(ch, &flt_pcap_ops, k->pc));
}


static void test_har_jsonl_pcap(void **state) {
  flt_chain_t ch = {0};
  flt_conn_t conns[3];
  sent_t sent[3];
  (void)state;

  make_bodies();
  sinks_t sk;
  sinks_open(&sk, &ch, "t");
  char *har_path = sk.har_path, *jl_path = sk.jl_path, *pc_path = sk.pc_path;
  void *har = sk.har, *jl = sk.jl, *pc = sk.pc;

  /* An empty HAR is already valid. */
  flt_emit_shutdown(&ch);
  cJSON_Delete(load_har(har_path, 0));

  memset(sent, 0, sizeof(sent));
  init_conn(&conns[0], 1, "127.0.0.1:40000", "", 0); /* see flows[0].connect_to */
  init_conn(&conns[1], 2, "127.0.0.1:40001", "", 0); /* never connected */
  init_conn(&conns[2], 3, "[::1]:5555", "[2001:db8::1]:443", 1);
  conns[1].server_port = 8080;
  snprintf(conns[1].server_host, sizeof(conns[1].server_host), "10.9.8.7");
  for (int i = 0; i < N_FLOWS; i++) {
    test_flow_t t = flows[i];
    int c = i < 5 ? 0 : i - 4;
    if (i == 1) t.resp_len = gz_len;
    flt_emit_conn_open(&ch, &conns[c]);
    run_flow(&ch, &conns[c], &sent[c], (uint64_t)i + 1, &t);
    /* Valid HAR after every flow, without closing anything. */
    flt_emit_shutdown(&ch);
    cJSON *doc = load_har(har_path, i + 1);
    for (int k = 0; k <= i; k++)
      check_har_entry(entry_at(doc, k), k);
    cJSON_Delete(doc);
    check_jsonl(jl_path, i + 1);
  }
  for (int c = 0; c < 3; c++)
    flt_emit_conn_close(&ch, &conns[c]);
  flt_emit_shutdown(&ch);
  flt_har_free(har);
  flt_jsonl_free(jl);
  flt_pcap_free(pc);
  check_pcap(pc_path, sent);
  for (int c = 0; c < 3; c++) {
    flt_strbuf_free(&sent[c].bytes[0]);
    flt_strbuf_free(&sent[c].bytes[1]);
  }
}

/* ---- threads ---------------------------------------------------------------- */

#define N_THREADS 4
#define FLOWS_PER_THREAD 25

typedef struct worker {
  const flt_chain_t *ch;
  int index;
  flt_conn_t conn;
  sent_t sent;
} worker_t;

/* One connection per thread, as the workers of the proxy do. */
static void *worker_main(void *arg) {
  worker_t *w = arg;
  char client[32];

  snprintf(client, sizeof(client), "127.0.0.1:%d", 41000 + w->index);
  init_conn(&w->conn, 100 + (uint64_t)w->index, client, "93.184.216.34:80", 0);
  flt_emit_conn_open(w->ch, &w->conn);
  for (int i = 0; i < FLOWS_PER_THREAD; i++)
    run_flow(w->ch, &w->conn, &w->sent, (uint64_t)(w->index * 1000 + i + 1), &flows[i % 2 ? 2 : 0]);
  flt_emit_conn_close(w->ch, &w->conn);
  return NULL;
}

static void test_concurrent_connections(void **state) {
  flt_chain_t ch = {0};
  worker_t w[N_THREADS];
  pthread_t th[N_THREADS];
  (void)state;

  make_bodies();
  sinks_t sk;
  sinks_open(&sk, &ch, "mt");
  char *har_path = sk.har_path, *jl_path = sk.jl_path, *pc_path = sk.pc_path;
  void *har = sk.har, *jl = sk.jl, *pc = sk.pc;
  for (int i = 0; i < N_THREADS; i++) {
    memset(&w[i], 0, sizeof(w[i]));
    w[i].ch = &ch;
    w[i].index = i;
    assert_int_equal(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
  }
  for (int i = 0; i < N_THREADS; i++)
    pthread_join(th[i], NULL);
  flt_emit_shutdown(&ch);
  flt_har_free(har);
  flt_jsonl_free(jl);
  flt_pcap_free(pc);

  cJSON_Delete(load_har(har_path, N_THREADS * FLOWS_PER_THREAD));
  char *text = slurp(jl_path, NULL);
  assert_int_equal(count_lines_with(text, "{\"id\":", "}"), N_THREADS * FLOWS_PER_THREAD);
  free(text);

  uint16_t cports[N_THREADS];
  sent_t sent[N_THREADS];
  for (int i = 0; i < N_THREADS; i++) {
    cports[i] = (uint16_t)(41000 + i);
    sent[i] = w[i].sent;
  }
  check_streams(pc_path, N_THREADS, cports, sent, NULL);
  for (int i = 0; i < N_THREADS; i++) {
    flt_strbuf_free(&sent[i].bytes[0]);
    flt_strbuf_free(&sent[i].bytes[1]);
  }
}

/* ---- write-behind ------------------------------------------------------------ */

/* Share of the file's pages in the page cache (mincore), or -1 when the
 * file system keeps files in memory anyway (tmpfs: nothing to drop). */
static double resident_share(const char *path) {
  struct statfs sfs;
  struct stat st;
  long page = sysconf(_SC_PAGESIZE);
  int fd = open(path, O_RDONLY);
  size_t pages, in = 0;

  assert_true(fd >= 0);
  assert_int_equal(fstat(fd, &st), 0);
  if (fstatfs(fd, &sfs) == 0 && sfs.f_type == TMPFS_MAGIC) {
    close(fd);
    return -1;
  }
  pages = ((size_t)st.st_size + (size_t)page - 1) / (size_t)page;
  void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
  assert_true(map != MAP_FAILED);
  unsigned char *vec = malloc(pages);
  assert_non_null(vec);
  assert_int_equal(mincore(map, (size_t)st.st_size, vec), 0);
  for (size_t i = 0; i < pages; i++)
    in += vec[i] & 1;
  free(vec);
  munmap(map, (size_t)st.st_size);
  close(fd);
  return (double)in / (double)pages;
}

/* Files larger than two write-behind windows (32 MiB each) are complete
 * and readable, and their beginning is no longer held in the page cache. */
static void test_write_behind(void **state) {
  enum { CHUNK = 1200000, N_CHUNKS = 66, BODY = 2 << 20, N_BODIES = 40 }; /* 64 + 2 events */
  static const flt_header_t text_only[] = {H("Content-Type", "text/plain")};
  char pc_path[128], har_path[128], err[512];
  flt_chain_t pc_ch = {0}, har_ch = {0};
  flt_conn_t c, hc;
  sent_t sent, none;
  uint8_t *data = malloc(CHUNK + 256);
  char *body = malloc(BODY);
  (void)state;

  assert_true(data && body);
  for (size_t i = 0; i < CHUNK + 256; i++)
    data[i] = (uint8_t)(i * 7 + (i >> 9));
  memset(body, 'b', BODY);
  path_in(pc_path, sizeof(pc_path), "behind.pcap");
  path_in(har_path, sizeof(har_path), "behind.har");
  void *pc = flt_pcap_new(pc_path, err, sizeof(err));
  void *har = flt_har_new(har_path, BODY, "9.9-test", err, sizeof(err));
  assert_true(pc && har);
  flt_pcap_set_slot(pc, flt_chain_add(&pc_ch, &flt_pcap_ops, pc));
  flt_har_set_slot(har, flt_chain_add(&har_ch, &flt_har_ops, har));

  init_conn(&c, 31, "127.0.0.1:40200", "93.184.216.34:80", 0);
  memset(&sent, 0, sizeof(sent));
  flt_emit_conn_open(&pc_ch, &c);
  for (int i = 0; i < N_CHUNKS; i++)
    emit_data(&pc_ch, &c, &sent, i % 33 ? FLT_DIR_RESPONSE : FLT_DIR_REQUEST, data + i % 256,
              CHUNK);
  flt_emit_conn_close(&pc_ch, &c);

  init_conn(&hc, 32, "127.0.0.1:40201", "93.184.216.34:80", 0);
  memset(&none, 0, sizeof(none));
  flt_emit_conn_open(&har_ch, &hc);
  for (int i = 0; i < N_BODIES; i++) {
    test_flow_t t = {.method = "GET",
                     .url = "http://example.test/big",
                     .target = "/big",
                     .req_h = get_h,
                     .n_req_h = 1,
                     .status = 200,
                     .reason = "OK",
                     .resp_h = text_only,
                     .n_resp_h = 1,
                     .resp_body = body,
                     .resp_len = BODY,
                     .chunk = 65536};
    run_flow(&har_ch, &hc, &none, (uint64_t)i + 1, &t);
    flt_strbuf_reset(&none.bytes[0]);
    flt_strbuf_reset(&none.bytes[1]);
  }
  flt_emit_conn_close(&har_ch, &hc);
  flt_emit_shutdown(&pc_ch);
  flt_emit_shutdown(&har_ch);
  flt_pcap_free(pc);
  flt_har_free(har);
  flt_strbuf_free(&none.bytes[0]);
  flt_strbuf_free(&none.bytes[1]);

  /* Before reading them back, which brings their pages in again. */
  for (int k = 0; k < 2; k++) {
    double share = resident_share(k ? har_path : pc_path);
    if (share < 0) {
      printf("tmpfs: skipping the page-cache check\n");
      break;
    }
    assert_true(share < 0.8); /* at least the first window was dropped */
  }
  static const uint16_t cport = 40200;
  check_streams(pc_path, 1, &cport, &sent, NULL);
  cJSON *doc = load_har(har_path, N_BODIES);
  for (int i = 0; i < N_BODIES; i++) {
    const char *text = get_str(get(get(entry_at(doc, i), "response"), "content"), "text");
    assert_int_equal(strlen(text), BODY);
    assert_int_equal(strspn(text, "b"), BODY);
  }
  cJSON_Delete(doc);
  flt_strbuf_free(&sent.bytes[0]);
  flt_strbuf_free(&sent.bytes[1]);
  free(data);
  free(body);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_har_jsonl_pcap),
      cmocka_unit_test(test_pcap_large_segments),
      cmocka_unit_test(test_concurrent_connections),
      cmocka_unit_test(test_write_behind),
  };
  return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
