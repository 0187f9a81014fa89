/*
 * Hardware ceiling for the postern benchmarks: what two threads on this
 * machine can do with nothing but C11 atomics, no runtime in the way.
 *
 * Three measurements, each printed as "key value" lines on stdout so
 * bench/native.ts can parse them:
 *
 *   pingpong-spin: one cache line bounced between two pthreads. The pinger
 *     stores an odd sequence number, the ponger spins until it sees it and
 *     stores the next even one; the pinger spins for that. One round trip is
 *     two cache-line transfers: the floor under any spinning ping-pong.
 *   pingpong-futex (Linux only): the same exchange, but each side sleeps in
 *     FUTEX_WAIT and the other wakes it with FUTEX_WAKE: the floor under
 *     Atomics.wait/notify, which V8 builds on the same futex.
 *   spsc-16: a single-producer single-consumer ring of 16-byte records
 *     (Lamport queue with cached indices, acquire/release ordering). The
 *     producer writes a sequence number into each record, the consumer checks
 *     it: the ceiling for one-way throughput of small records.
 *
 * Roles: main starts one "ponger"/"consumer" thread and acts as the
 * "pinger"/"producer" itself.
 *
 * Usage: ceiling [scale] [probe]. scale multiplies the iteration counts
 * (default 1). "probe" runs only a short spinning ping-pong: bench/run.ts
 * takes one before every scenario, because on a virtual machine the two
 * vCPUs can move between host cores that share a cache and cores that do
 * not, and the round trip (and every figure with it) changes severalfold.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef __linux__
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#define CACHE_LINE 64

/* Spin-wait hint: without it a waiting core floods the line with reads and
 * slows the very store it waits for. */
#if defined(__x86_64__) || defined(__i386__)
#define cpu_relax() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define cpu_relax() __asm__ __volatile__("yield")
#else
#define cpu_relax() ((void)0)
#endif

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* Sorts samples in place and prints p50, p99 and mean under `name`. */
static void report_latency(const char *name, uint64_t *samples, size_t n, uint64_t total_ns) {
  qsort(samples, n, sizeof samples[0], cmp_u64);
  printf("%s.p50_ns %.1f\n", name, (double)samples[n / 2]);
  printf("%s.p99_ns %.1f\n", name, (double)samples[(n * 99) / 100]);
  printf("%s.mean_ns %.1f\n", name, (double)total_ns / (double)n);
  printf("%s.samples %zu\n", name, n);
}

/* ---- spinning ping-pong ---------------------------------------------- */

/* The one shared word, alone on its cache line so nothing else bounces. */
static struct {
  alignas(CACHE_LINE) _Atomic uint32_t word;
  char pad[CACHE_LINE - sizeof(uint32_t)];
} shared;

static size_t pp_rounds;

static void *spin_ponger(void *arg) {
  (void)arg;
  for (uint32_t i = 0; i < pp_rounds; i++) {
    uint32_t ping = 2 * i + 1;
    while (atomic_load_explicit(&shared.word, memory_order_acquire) != ping) cpu_relax();
    atomic_store_explicit(&shared.word, ping + 1, memory_order_release);
  }
  return NULL;
}

static void pingpong_spin(size_t rounds) {
  uint64_t *samples = malloc(rounds * sizeof *samples);
  pthread_t t;
  pp_rounds = rounds;
  atomic_store(&shared.word, 0);
  pthread_create(&t, NULL, spin_ponger, NULL);
  uint64_t start = now_ns(), prev = start;
  for (uint32_t i = 0; i < rounds; i++) {
    uint32_t ping = 2 * i + 1;
    atomic_store_explicit(&shared.word, ping, memory_order_release);
    while (atomic_load_explicit(&shared.word, memory_order_acquire) != ping + 1) cpu_relax();
    /* One clock read per round trip: each sample includes one clock_gettime. */
    uint64_t t1 = now_ns();
    samples[i] = t1 - prev;
    prev = t1;
  }
  pthread_join(t, NULL);
  report_latency("pingpong-spin", samples, rounds, prev - start);
  free(samples);
}

/* ---- futex ping-pong ------------------------------------------------- */
#ifdef __linux__
static void futex_wait(_Atomic uint32_t *addr, uint32_t expected) {
  syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
}
static void futex_wake(_Atomic uint32_t *addr) {
  syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static void *futex_ponger(void *arg) {
  (void)arg;
  for (uint32_t i = 0; i < pp_rounds; i++) {
    uint32_t ping = 2 * i + 1;
    uint32_t v;
    /* Sleep while the word still holds our own last reply (2*i). */
    while ((v = atomic_load_explicit(&shared.word, memory_order_acquire)) != ping) futex_wait(&shared.word, v);
    atomic_store_explicit(&shared.word, ping + 1, memory_order_release);
    futex_wake(&shared.word);
  }
  return NULL;
}

static void pingpong_futex(size_t rounds) {
  uint64_t *samples = malloc(rounds * sizeof *samples);
  pthread_t t;
  pp_rounds = rounds;
  atomic_store(&shared.word, 0);
  pthread_create(&t, NULL, futex_ponger, NULL);
  uint64_t start = now_ns(), prev = start;
  for (uint32_t i = 0; i < rounds; i++) {
    uint32_t ping = 2 * i + 1;
    uint32_t v;
    atomic_store_explicit(&shared.word, ping, memory_order_release);
    futex_wake(&shared.word);
    while ((v = atomic_load_explicit(&shared.word, memory_order_acquire)) != ping + 1) futex_wait(&shared.word, v);
    uint64_t t1 = now_ns();
    samples[i] = t1 - prev;
    prev = t1;
  }
  pthread_join(t, NULL);
  report_latency("pingpong-futex", samples, rounds, prev - start);
  free(samples);
}
#endif

/* ---- SPSC ring of 16-byte records ----------------------------------- */

#define RECORD 16
#define RING_RECORDS (1u << 16) /* 1 MiB of records, the size the JS rings get */

typedef struct {
  uint64_t seq;
  uint64_t payload;
} record_t;

/* head is written by the consumer only, tail by the producer only; each on
 * its own line, next to the other side's private cache of it. */
static struct {
  alignas(CACHE_LINE) _Atomic uint64_t tail;
  alignas(CACHE_LINE) uint64_t cached_head; /* producer-private */
  alignas(CACHE_LINE) _Atomic uint64_t head;
  alignas(CACHE_LINE) uint64_t cached_tail; /* consumer-private */
  alignas(CACHE_LINE) record_t slots[RING_RECORDS];
} ring;

static size_t spsc_count;
static int spsc_ok = 1;

static void *spsc_consumer(void *arg) {
  (void)arg;
  uint64_t head = 0;
  for (uint64_t expected = 0; expected < spsc_count; expected++) {
    if (head == ring.cached_tail) {
      /* Empty as far as we knew: refresh the producer's tail. */
      while ((ring.cached_tail = atomic_load_explicit(&ring.tail, memory_order_acquire)) == head) cpu_relax();
    }
    record_t *r = &ring.slots[head & (RING_RECORDS - 1)];
    if (r->seq != expected) spsc_ok = 0;
    head++;
    atomic_store_explicit(&ring.head, head, memory_order_release);
  }
  return NULL;
}

static void spsc16(size_t count) {
  pthread_t t;
  spsc_count = count;
  memset(&ring, 0, sizeof ring);
  pthread_create(&t, NULL, spsc_consumer, NULL);
  uint64_t start = now_ns();
  uint64_t tail = 0;
  for (uint64_t i = 0; i < count; i++) {
    if (tail - ring.cached_head == RING_RECORDS) {
      /* Full as far as we knew: refresh the consumer's head. */
      while (tail - (ring.cached_head = atomic_load_explicit(&ring.head, memory_order_acquire)) == RING_RECORDS)
        cpu_relax();
    }
    record_t *r = &ring.slots[tail & (RING_RECORDS - 1)];
    r->seq = i;
    r->payload = ~i;
    tail++;
    atomic_store_explicit(&ring.tail, tail, memory_order_release);
  }
  pthread_join(t, NULL);
  uint64_t elapsed = now_ns() - start;
  printf("spsc-16.records %zu\n", count);
  printf("spsc-16.elapsed_ns %llu\n", (unsigned long long)elapsed);
  printf("spsc-16.msgs_per_sec %.0f\n", (double)count * 1e9 / (double)elapsed);
  printf("spsc-16.ok %d\n", spsc_ok);
}

int main(int argc, char **argv) {
  double scale = argc > 1 ? atof(argv[1]) : 1.0;
  if (!(scale > 0)) scale = 1.0;
  if (argc > 2 && strcmp(argv[2], "probe") == 0) {
    size_t probe_rounds = (size_t)(200000 * scale);
    pingpong_spin(probe_rounds < 1000 ? 1000 : probe_rounds);
    return 0;
  }
  size_t spin_rounds = (size_t)(1000000 * scale);
  size_t futex_rounds = (size_t)(20000 * scale);
  size_t spsc_records = (size_t)(30000000 * scale);
  if (spin_rounds < 1000) spin_rounds = 1000;
  if (futex_rounds < 1000) futex_rounds = 1000;
  if (spsc_records < 100000) spsc_records = 100000;
  printf("record_bytes %d\n", RECORD);
  pingpong_spin(spin_rounds);
#ifdef __linux__
  pingpong_futex(futex_rounds);
#endif
  /* Five runs; the reader takes the median. Runs differ a lot: whether the
   * consumer trails the producer closely (a cache miss per record) or falls
   * behind and then reads whole lines the producer has finished with. */
  for (int i = 0; i < 5; i++) spsc16(spsc_records);
  fflush(stdout);
  return spsc_ok ? 0 : 1;
}
