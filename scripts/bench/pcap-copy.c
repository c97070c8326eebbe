// The C baseline for `xdpemu replay` with ingress and egress capture: the same reads and writes, nothing else.
//
// Usage: pcap-copy IN.pcap OUTDIR
//
// Reads a classic pcap with buffered reads (stdio, 1 MiB buffer), and writes every record twice: to
// OUTDIR/in0.ingress.pcap, and to one of OUTDIR/out{0..3}.egress.pcap chosen by a hash of the IPv4 5-tuple bytes
// (FNV-1a over bytes 26..37 and the protocol byte; other frames go to out0). Each output gets the input's file
// header and 1 MiB of stdio buffer. No parsing beyond the record header: this is the floor a replay that copies
// every frame into a frame buffer and out again to two captures is measured against.
// Build: cc -O2 -o pcap-copy pcap-copy.c

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { bufferSize = 1 << 20, maxRecord = 262144 };

static FILE *create(const char *dir, const char *name, const unsigned char *header) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(1);
    }
    setvbuf(f, NULL, _IOFBF, bufferSize);
    fwrite(header, 1, 24, f);
    return f;
}

static uint32_t flowHash(const unsigned char *p, uint32_t length) {
    if (length < 42 || p[12] != 0x08 || p[13] != 0x00) return 0;
    uint32_t h = 0x811C9DC5u;
    for (int i = 26; i < 38; i++) h = (h ^ p[i]) * 0x01000193u;
    h = (h ^ p[23]) * 0x01000193u;
    h ^= h >> 16;
    h *= 0x85EBCA6Bu;
    h ^= h >> 13;
    h *= 0xC2B2AE35u;
    h ^= h >> 16;
    return h;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s IN.pcap OUTDIR\n", argv[0]);
        return 2;
    }
    FILE *in = fopen(argv[1], "rb");
    if (!in) {
        perror(argv[1]);
        return 1;
    }
    setvbuf(in, NULL, _IOFBF, bufferSize);
    unsigned char header[24];
    if (fread(header, 1, 24, in) != 24) {
        fprintf(stderr, "%s: no file header\n", argv[1]);
        return 1;
    }
    FILE *ingress = create(argv[2], "in0.ingress.pcap", header);
    FILE *egress[4];
    for (int i = 0; i < 4; i++) {
        char name[32];
        snprintf(name, sizeof name, "out%d.egress.pcap", i);
        egress[i] = create(argv[2], name, header);
    }
    static unsigned char record[16 + maxRecord];
    unsigned long records = 0;
    while (fread(record, 1, 16, in) == 16) {
        uint32_t caplen;
        memcpy(&caplen, record + 8, 4);
        if (caplen > maxRecord || fread(record + 16, 1, caplen, in) != caplen) {
            fprintf(stderr, "%s: bad or truncated record %lu\n", argv[1], records + 1);
            return 1;
        }
        fwrite(record, 1, 16 + caplen, ingress);
        fwrite(record, 1, 16 + caplen, egress[flowHash(record + 16, caplen) % 4]);
        records++;
    }
    int failed = fclose(ingress) != 0;
    for (int i = 0; i < 4; i++) failed |= fclose(egress[i]) != 0;
    fclose(in);
    if (failed) {
        perror("fclose");
        return 1;
    }
    return 0;
}
