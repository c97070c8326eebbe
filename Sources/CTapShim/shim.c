#include "CTapShim.h"
int xdpemu_shim_placeholder(void) { return 0; }
