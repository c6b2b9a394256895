/* transcript.h — the recording filters: HAR 1.2, JSON lines, PCAP and the
 * NSS key log (README.md, "Transcripts").
 *
 * Each constructor opens (creates or truncates; the key log appends) its
 * file at start-up, mode 0600 (an existing file that group or others could
 * read is made 0600, with a warning saying so) and returns NULL with a complete sentence in `err` when
 * it cannot (the caller exits 1 before listening). Each returns the `self`
 * for flt_chain_add() with the matching ops; call the *_set_slot function
 * with the slot index flt_chain_add returned. Writing happens off the event
 * loop (a writer thread); a write error at run time is one loud warning on
 * stderr and recording stops, proxying continues. Freed after the chain's
 * on_shutdown, which flushes everything.
 */
#ifndef TLSPEEK_TRANSCRIPT_H
#define TLSPEEK_TRANSCRIPT_H

#include <stddef.h>

#include "filters/filter.h"

/* HAR 1.2. The file is valid JSON after every write, even if the process
 * is then killed; a write holds the flows that ended since the last one
 * (TR_GATHER_NS, about 20 ms). Entries are in the order flows complete, which
 * for a client sending one request after another is the order they
 * started (har.c says why). Bodies kept: at most `body_cap` decoded bytes
 * per message (recorded as _bodyTruncated; 0 keeps none). `creator_version`
 * is tlspeek's version. The HAR extras are listed in har.c. */
extern const flt_ops_t flt_har_ops;
void *flt_har_new(const char *path, size_t body_cap, const char *creator_version,
                  char *err, size_t errlen);
void flt_har_set_slot(void *self, int slot);
void flt_har_free(void *self);

/* One JSON object per completed flow, one line each, written in whole
 * lines like HAR's entries; the shape is documented in jsonl.c. `body_cap`
 * as for HAR. */
extern const flt_ops_t flt_jsonl_ops;
void *flt_jsonl_new(const char *path, size_t body_cap, char *err, size_t errlen);
void flt_jsonl_set_slot(void *self, int slot);
void flt_jsonl_free(void *self);

/* HAR and JSON lines of one run record each flow once, for both: one copy
 * of its heads and bodies, one base64 encoding. Call after both slots are
 * set, before traffic; nothing changes when either is NULL or their
 * body_caps differ. Each file is written as without sharing. */
void flt_har_jsonl_share(void *har, void *jsonl);

/* Decrypted traffic as synthetic Ethernet/IP/TCP packets (libpcap); TCP
 * checksums are 0 (pcap.c says why). */
extern const flt_ops_t flt_pcap_ops;
void *flt_pcap_new(const char *path, char *err, size_t errlen);
void flt_pcap_set_slot(void *self, int slot);
void flt_pcap_free(void *self);

/* NSS key log, both legs; file created 0600, appended, whole lines (within
 * about 20 ms of the handshake). */
extern const flt_ops_t flt_keylog_ops;
void *flt_keylog_new(const char *path, char *err, size_t errlen);
void flt_keylog_free(void *self);

#endif
