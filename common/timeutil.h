/* Clocks: wall time for records, monotonic time for durations. */
#ifndef CARVE_TIMEUTIL_H
#define CARVE_TIMEUTIL_H

#include <stddef.h>
#include <stdint.h>

/* Milliseconds since the Unix epoch (CLOCK_REALTIME). */
int64_t time_now_ms(void);
/* Milliseconds from CLOCK_MONOTONIC (durations, timeouts). */
int64_t time_mono_ms(void);
/* Sleep on the calling thread (worker threads only, never the loop). */
void time_sleep_ms(unsigned ms);
/* "2026-11-25T13:00:00.123Z" into buf. */
void time_format_ms(int64_t ms, char *buf, size_t len);

#endif
