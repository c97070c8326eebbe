#ifndef CBENCHSHIM_H
#define CBENCHSHIM_H

/// prctl(PR_SET_TIMERSLACK, ns): the map-update thread sleeps ~5 µs between updates, which the default 50 µs
/// timer slack would stretch. C because prctl is variadic and Swift does not import it.
int bench_set_timer_slack(unsigned long nanoseconds);

#endif
