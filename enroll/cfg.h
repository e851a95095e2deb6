/*
 * enr_cfg: the `enroll:` section of easgate.yaml (the enrollment role).
 *
 * Declared as a ytree key table and registered with conf_register_section()
 * (enr_cfg_register() before conf_load), so `easgate check` validates and
 * prints it with the rest of the file. Documented in docs/configuration.md
 * and docs/enrollment.md.
 */
#ifndef EG_ENR_CFG_H
#define EG_ENR_CFG_H

#include "common/conf.h"

#include <stdint.h>

struct enr_pair {
    const char *cert, *key; /* PEM files, relative to the config file */
};

struct enr_cfg {
    struct enr_pair ca;             /* the device CA (written by `easgate core init-ca`) */
    const char *ca_name;            /* CN of a CA made by init-ca */
    int64_t ca_validity_ms;         /* lifetime of a CA made by init-ca */
    const char *ca_algo;            /* key type of a CA made by init-ca: ec256, ec384, rsa3072 */
    int64_t validity_ms;            /* device certificate lifetime */
    int64_t renew_before_ms;        /* a certificate may be renewed this long before it expires */
    const char *key_algo;           /* server-generated device keys: ec256 (default), rsa2048 ... */
    const char *public_host;        /* the proxy's public name, as phones reach it */
    const char *url;                /* the enrollment server's base URL for invitation links */
    struct units_addr listen;       /* the enrollment HTTPS listener; port 0 = none */
    struct enr_pair tls;            /* its certificate */
    struct enr_pair signing;        /* profile signer; default: tls */
    const char *crl_path;           /* the CRL file the proxy loads (DER) */
    int64_t crl_validity_ms;        /* nextUpdate = thisUpdate + this; regenerated at half */
    int64_t invite_expiry_ms;       /* default key lifetime; 0 = keys never expire */
    int64_t max_body;               /* bytes of an enrollment request body */
    int max_conns_per_client;       /* connections from one address to the listener */
    int64_t head_timeout_ms;        /* a request must arrive whole within this */
    int refusal_free_failures;      /* refusals per address and per key within the window */
    int64_t refusal_window_ms;      /* refusals are counted this long from the first */
    int64_t refusal_backoff_ms;     /* the first wait past the free refusals; doubles */
    int64_t refusal_backoff_max_ms; /* the longest wait */
    int portal_per_address;         /* portal requests from one address per window */
    int portal_per_key;             /* portal requests naming one key per window */
    int64_t portal_window_ms;       /* the portal's rate-limit window */
    const char *org;                /* PayloadOrganization in profiles */
    const char *identifier;         /* reverse-DNS prefix of profile identifiers */
};

/* Register the `enroll:` section with the configuration loader (idempotent). */
int enr_cfg_register(void);

/* The section of a loaded conf, or NULL when the file has no `enroll:`. */
const struct enr_cfg *enr_cfg_get(const struct conf *c);

#endif
