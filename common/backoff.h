/*
 * backoff: failures counted per key (an account name, a client address, an
 * enrollment key, an account and address pair), with an exponential
 * back-off once a key has had `free` failures within its window. This is
 * how the core slows password guessing and the enrollment server slows key
 * probing: the first few mistakes cost nothing, then each further one
 * doubles the wait (base, 2 base, 4 base ... up to max) before the key may
 * try again. A wait ends by itself, or when an admin lifts it.
 *
 * A key's window starts at its first failure and lasts window_ms; after it
 * the count starts over (a wait in force still runs out). The same counts,
 * with free set to INT_MAX (no wait ever), serve the audit log: the first
 * failure of a window is written at once, the rest become one row with a
 * count when the window ends (backoff_take_ended).
 *
 * The table is bounded (max_keys): a new key past it takes the slot of the
 * oldest one made, so memory stays fixed whatever an attacker sends; a
 * flood of new keys can make the table forget an older key early, which is
 * why callers count an address and a name apart (a flood from one address
 * waits on the address's own back-off first). Lookups are by hash; every
 * call takes the table's mutex, so any thread may call.
 */
#ifndef EG_BACKOFF_H
#define EG_BACKOFF_H

#include <stddef.h>
#include <stdint.h>

#define BACKOFF_KEY_MAX 320 /* longer keys are cut (an account name and an address fit) */

struct backoff_cfg {
    int free;          /* failures within the window that cost nothing */
    int64_t window_ms; /* a key's count starts over this long after its first failure */
    int64_t base_ms;   /* the first wait; each further failure doubles it */
    int64_t max_ms;    /* ... up to this */
    size_t max_keys;   /* keys kept at most */
};

/* One key's state, as listed or taken. */
struct backoff_state {
    char key[BACKOFF_KEY_MAX];
    int failures;     /* within the current window */
    int refused;      /* attempts refused while waiting, within the window */
    int64_t start_ms; /* the window's first failure */
    int64_t last_ms;  /* the last failure or refusal */
    int64_t until_ms; /* the wait ends then (0 or past: no wait) */
};

struct backoff;

/* NULL when out of memory. Free with backoff_free (NULL is fine). */
struct backoff *backoff_new(const struct backoff_cfg *cfg);
void backoff_free(struct backoff *b);

/* The wait in ms before key may try again (0 = now). A refused attempt
 * (the answer > 0) is counted in the key's refused. NULL b: 0. */
int64_t backoff_wait(struct backoff *b, const char *key, int64_t now_ms);
/* Count a failure of key: its number within the window (1 = the window's
 * first). Past `free` failures it starts or doubles the key's wait. */
int backoff_fail(struct backoff *b, const char *key, int64_t now_ms);
/* Forget key (a success, or an admin lifting its wait): 1 if it was kept. */
int backoff_forget(struct backoff *b, const char *key);
/* Keys waiting now, up to max, into out: their number. */
size_t backoff_waiting(struct backoff *b, int64_t now_ms, struct backoff_state *out, size_t max);
/* Keys whose window has ended, up to max, moved into out (and forgotten
 * unless still waiting): their number. */
size_t backoff_take_ended(struct backoff *b, int64_t now_ms, struct backoff_state *out, size_t max);

#endif
