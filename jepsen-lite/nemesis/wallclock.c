/* jepsen-lite's wall-clock shim (LD_PRELOAD): the process's realtime clock
 * is offset and/or skewed as the file named by JEPSEN_LITE_CLOCK_FILE says
 * ("+8s x1", "-22s x1", "+0 x0.8": offset in seconds, then a rate), re-read
 * at most every 50 ms.  Only the wall clock is faked (clock_gettime of the
 * CLOCK_REALTIME family, gettimeofday, time): the monotonic clock, sleeps
 * and timed waits are left alone, as on a machine whose clock an NTP step
 * or `date -s` moved.  (libfaketime also intercepts sleeps; with the
 * monotonic clock left real, CPython's time.sleep then fails with EINVAL.)
 * Compiled on first use by jepsen-lite (nemesis/clock.py).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static int (*real_clock_gettime)(clockid_t, struct timespec *);
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
/* fake = anchor_fake + (real - anchor_real) * rate, from the last change on */
static double anchor_real = 0.0, anchor_fake = 0.0, rate = 1.0;
static int active = 0;
static double last_read = -1.0;
static char spec_seen[64];

static double ts(const struct timespec *t) { return t->tv_sec + t->tv_nsec / 1e9; }

static void init(void) {
    if (!real_clock_gettime)
        real_clock_gettime = (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT, "clock_gettime");
}

/* the fake wall clock for the real one, ``now`` (seconds); a new spec is
 * applied relative to the real clock at the moment it is read */
static double fake(double now) {
    struct timespec mono;
    real_clock_gettime(CLOCK_MONOTONIC, &mono);
    double m = ts(&mono);
    pthread_mutex_lock(&lock);
    if (last_read < 0 || m - last_read > 0.05) {
        last_read = m;
        const char *path = getenv("JEPSEN_LITE_CLOCK_FILE");
        FILE *f = path ? fopen(path, "r") : NULL;
        char buf[64] = {0};
        if (f) {
            if (!fgets(buf, sizeof buf, f)) buf[0] = 0;
            fclose(f);
        }
        if (buf[0] && strcmp(buf, spec_seen) != 0) {
            char *end;
            double o = strtod(buf, &end), r = 1.0;
            while (*end == 's' || *end == ' ') end++;
            if (*end == 'x') r = strtod(end + 1, NULL);
            if (r <= 0) r = 1.0;
            anchor_real = now;
            anchor_fake = now + o;
            rate = r;
            active = !(o == 0.0 && r == 1.0);
            snprintf(spec_seen, sizeof spec_seen, "%s", buf);
        }
    }
    double out = active ? anchor_fake + (now - anchor_real) * rate : now;
    pthread_mutex_unlock(&lock);
    return out;
}

static int is_realtime(clockid_t c) {
    return c == CLOCK_REALTIME || c == CLOCK_REALTIME_COARSE;
}

int clock_gettime(clockid_t c, struct timespec *t) {
    init();
    int rc = real_clock_gettime(c, t);
    if (rc == 0 && is_realtime(c)) {
        double v = fake(ts(t));
        t->tv_sec = (time_t)v;
        t->tv_nsec = (long)((v - (double)t->tv_sec) * 1e9);
        if (t->tv_nsec < 0) { t->tv_sec -= 1; t->tv_nsec += 1000000000L; }
    }
    return rc;
}

int gettimeofday(struct timeval *tv, void *tz) {
    struct timespec t;
    (void)tz;
    if (clock_gettime(CLOCK_REALTIME, &t) != 0) return -1;
    tv->tv_sec = t.tv_sec;
    tv->tv_usec = t.tv_nsec / 1000;
    return 0;
}

time_t time(time_t *out) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    if (out) *out = t.tv_sec;
    return t.tv_sec;
}
