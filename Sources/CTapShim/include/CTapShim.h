#ifndef XDPEMU_CTAPSHIM_H
#define XDPEMU_CTAPSHIM_H
// Placeholder: TUNSETIFF and friends are added with the OS layer.
int xdpemu_shim_placeholder(void);
#endif
