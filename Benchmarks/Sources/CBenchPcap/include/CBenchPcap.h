#ifndef CBENCHPCAP_H
#define CBENCHPCAP_H

#include <stddef.h>
#include <stdint.h>

// libpcap's own reader and pcap_dump, for comparison with XDPEmuPcap. C because the root package's CPcap module is
// not a product, and a second module map over <pcap/pcap.h> here would clash with it; this header keeps libpcap's
// types out of Swift.

/// An open pcap_dump output (a pcap_open_dead handle, nanosecond precision, Ethernet, snap length 262144).
typedef struct bench_pcap_dumper bench_pcap_dumper;

/// pcap_open_dead_with_tstamp_precision + pcap_dump_open; NULL on failure.
bench_pcap_dumper *bench_pcap_dump_open(const char *path);
/// pcap_dump of one record (the timestamp's nanoseconds go in `ts.tv_usec`, as libpcap does for nanosecond handles).
void bench_pcap_dump(bench_pcap_dumper *dumper, uint64_t timestamp_nanos, const uint8_t *bytes, uint32_t length);
/// pcap_dump_close + pcap_close; returns 0, or -1 if the final flush failed.
int bench_pcap_dump_close(bench_pcap_dumper *dumper);

/// Reads the whole file with pcap_next_ex (nanosecond precision); returns the records read (-1 if it cannot be
/// opened or a record is bad) and adds their captured lengths to *bytes.
long bench_pcap_read_all(const char *path, uint64_t *bytes);

#endif
