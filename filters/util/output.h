/* output.h — ordered, non-blocking output to a file descriptor.
 *
 * flt_output_write() queues a complete block and returns at once; one
 * writer thread per output writes blocks in the order they were queued,
 * each block with as few write(2) calls as possible and never interleaved
 * with another block. A write error is reported once on stderr (with the
 * file's name and strerror) and later blocks are dropped, counted.
 * The queue is bounded in bytes (default 64 MiB): past that, blocks are
 * dropped and counted, and the drop is reported — the event loop never
 * waits for a slow terminal or disk.
 */
#ifndef TLSPEEK_OUTPUT_H
#define TLSPEEK_OUTPUT_H

#include <stddef.h>
#include <stdint.h>

typedef struct flt_output flt_output_t;

/* `name` is used in messages ("stdout", a file path). Takes no ownership
 * of fd (it is not closed unless close_fd is non-zero). */
flt_output_t *flt_output_new(int fd, const char *name, int close_fd,
                             size_t max_queued);
/* Queues a copy of data[0..len). Thread-safe. */
void flt_output_write(flt_output_t *o, const void *data, size_t len);
/* Queues `data` itself (a malloc'd block), taking ownership. */
void flt_output_write_owned(flt_output_t *o, void *data, size_t len);
/* Waits until everything queued so far is written. */
void flt_output_flush(flt_output_t *o);
/* Flushes, stops the thread, frees. */
void flt_output_free(flt_output_t *o);
uint64_t flt_output_dropped(const flt_output_t *o);

/* Bytes queued in every writer of the process (console and transcripts)
 * and not yet written. The proxy stops reading new traffic while this is
 * above FLT_BACKLOG_HIGH and resumes below FLT_BACKLOG_LOW, so a slow disk
 * or terminal slows traffic down instead of losing records. */
#define FLT_BACKLOG_HIGH (64u * 1024 * 1024)
#define FLT_BACKLOG_LOW (16u * 1024 * 1024)
uint64_t flt_backlog(void);
/* Writers account for their queues here (delta may be negative). */
void flt_backlog_add(int64_t delta);

#endif
