#include "CBenchPcap.h"

#include <pcap/pcap.h>
#include <stdlib.h>

struct bench_pcap_dumper {
    pcap_t *handle;
    pcap_dumper_t *dumper;
};

bench_pcap_dumper *bench_pcap_dump_open(const char *path) {
    pcap_t *handle = pcap_open_dead_with_tstamp_precision(DLT_EN10MB, 262144, PCAP_TSTAMP_PRECISION_NANO);
    if (handle == NULL) {
        return NULL;
    }
    pcap_dumper_t *dumper = pcap_dump_open(handle, path);
    if (dumper == NULL) {
        pcap_close(handle);
        return NULL;
    }
    bench_pcap_dumper *result = malloc(sizeof *result);
    if (result == NULL) {
        pcap_dump_close(dumper);
        pcap_close(handle);
        return NULL;
    }
    result->handle = handle;
    result->dumper = dumper;
    return result;
}

void bench_pcap_dump(bench_pcap_dumper *dumper, uint64_t timestamp_nanos, const uint8_t *bytes, uint32_t length) {
    struct pcap_pkthdr header;
    header.ts.tv_sec = (time_t)(timestamp_nanos / 1000000000u);
    header.ts.tv_usec = (suseconds_t)(timestamp_nanos % 1000000000u);
    header.caplen = length;
    header.len = length;
    pcap_dump((u_char *)dumper->dumper, &header, bytes);
}

int bench_pcap_dump_close(bench_pcap_dumper *dumper) {
    int failed = pcap_dump_flush(dumper->dumper);
    pcap_dump_close(dumper->dumper);
    pcap_close(dumper->handle);
    free(dumper);
    return failed == 0 ? 0 : -1;
}

long bench_pcap_read_all(const char *path, uint64_t *bytes) {
    char message[PCAP_ERRBUF_SIZE];
    pcap_t *handle = pcap_open_offline_with_tstamp_precision(path, PCAP_TSTAMP_PRECISION_NANO, message);
    if (handle == NULL) {
        return -1;
    }
    long records = 0;
    struct pcap_pkthdr *header;
    const u_char *data;
    int status;
    while ((status = pcap_next_ex(handle, &header, &data)) == 1) {
        records += 1;
        *bytes += header->caplen;
    }
    pcap_close(handle);
    return status == PCAP_ERROR_BREAK ? records : -1;
}
