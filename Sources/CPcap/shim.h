#ifndef XDPEMU_CPCAP_SHIM_H
#define XDPEMU_CPCAP_SHIM_H
#include <pcap/pcap.h>
#endif
