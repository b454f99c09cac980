/* Whether [p, p + pbytes) and [q, q + qbytes) share a byte: an output written while an input is read (refused where a
 * kernel's order of reads and writes would make the result depend on it). Empty or NULL ranges share nothing. */
#ifndef FST4J_OVERLAP_H
#define FST4J_OVERLAP_H
#include <stdint.h>

static inline int fst_overlap(const void *p, int64_t pbytes, const void *q, int64_t qbytes) {
    return p && q && pbytes > 0 && qbytes > 0 && (const char *)p < (const char *)q + qbytes && (const char *)q < (const char *)p + pbytes;
}
#endif
