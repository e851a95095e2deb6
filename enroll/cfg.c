/* enr_cfg: the `enroll:` key table. See cfg.h; every key is in docs/configuration.md. */
#include "enroll/cfg.h"

#include "common/ytree.h"
#include "enroll/ca.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>

#define SEC 1000LL
#define DAY (86400LL * SEC)

#define EO(f) offsetof(struct enr_cfg, f)
#define PO(f) offsetof(struct enr_pair, f)

static int pair_check(void *obj, const struct yt_node *map, struct yt_ctx *ctx)
{
    const struct enr_pair *p = obj;
    if (map && (!p->cert || !p->key))
        return yt_err(ctx, map, "give both cert and key");
    return 0;
}

static const struct yt_key pair_sub[] = {
    {.name = "cert", .type = YK_PATH, .off = PO(cert)},
    {.name = "key", .type = YK_PATH, .off = PO(key)},
    {.check = pair_check},
};

static const struct yt_key ca_sub[] = {
    {.name = "cert", .type = YK_PATH, .off = PO(cert), .def = "device-ca.crt"},
    {.name = "key", .type = YK_PATH, .off = PO(key), .def = "device-ca.key"},
    {0},
};

static int enr_check(void *obj, const struct yt_node *map, struct yt_ctx *ctx)
{
    struct enr_cfg *c = obj;
    enum enr_algo a;
    if (enr_algo_parse(c->ca_algo, &a) < 0 || a == ENR_ALGO_RSA2048)
        return yt_err(ctx, yt_get(map, "ca_algo") ? yt_get(map, "ca_algo") : map,
                      "ca_algo must be ec256, ec384 or rsa3072");
    if (enr_algo_parse(c->key_algo, &a) < 0)
        return yt_err(ctx, yt_get(map, "key_algo") ? yt_get(map, "key_algo") : map,
                      "key_algo must be ec256, ec384, rsa2048 or rsa3072");
    if (c->renew_before_ms >= c->validity_ms)
        return yt_err(ctx, map, "renew_before must be shorter than validity");
    if (c->url && strncmp(c->url, "https://", 8) != 0 && strncmp(c->url, "http://", 7) != 0)
        return yt_err(ctx, yt_get(map, "url"), "url must start with https:// (or http://)");
    if (!c->signing.cert && c->tls.cert)
        c->signing = c->tls;
    return 0;
}

static const struct yt_key enr_keys[] = {
    {.name = "ca", .type = YK_MAP, .off = EO(ca), .sub = ca_sub},
    {.name = "ca_name", .type = YK_STR, .off = EO(ca_name), .def = "easgate device CA"},
    {.name = "ca_validity",
     .type = YK_DUR,
     .off = EO(ca_validity_ms),
     .def = "3650d",
     .min = DAY,
     .max = 36500 * DAY},
    {.name = "ca_algo", .type = YK_STR, .off = EO(ca_algo), .def = "ec256"},
    {.name = "validity",
     .type = YK_DUR,
     .off = EO(validity_ms),
     .def = "365d",
     .min = DAY,
     .max = 3650 * DAY},
    {.name = "renew_before",
     .type = YK_DUR,
     .off = EO(renew_before_ms),
     .def = "30d",
     .min = 0,
     .max = 3650 * DAY},
    {.name = "key_algo", .type = YK_STR, .off = EO(key_algo), .def = "ec256"},
    {.name = "public_host", .type = YK_STR, .off = EO(public_host), .flags = YK_REQUIRED},
    {.name = "url", .type = YK_STR, .off = EO(url)},
    {.name = "listen", .type = YK_ADDR, .off = EO(listen)},
    {.name = "tls", .type = YK_MAP, .off = EO(tls), .sub = pair_sub},
    {.name = "signing", .type = YK_MAP, .off = EO(signing), .sub = pair_sub},
    {.name = "crl", .type = YK_PATH, .off = EO(crl_path), .def = "device-ca.crl"},
    {.name = "crl_validity",
     .type = YK_DUR,
     .off = EO(crl_validity_ms),
     .def = "7d",
     .min = 60 * SEC,
     .max = 365 * DAY},
    {.name = "invite_expiry",
     .type = YK_DUR,
     .off = EO(invite_expiry_ms),
     .def = "14d",
     .min = 0,
     .max = 3650 * DAY},
    {.name = "max_body",
     .type = YK_SIZE,
     .off = EO(max_body),
     .def = "64k",
     .min = 1024,
     .max = 1 << 20},
    {.name = "max_conns_per_client",
     .type = YK_INT,
     .off = EO(max_conns_per_client),
     .def = "32",
     .min = 1,
     .max = 100000},
    {.name = "head_timeout",
     .type = YK_DUR,
     .off = EO(head_timeout_ms),
     .def = "10s",
     .min = 100,
     .max = 10 * 60 * SEC},
    {.name = "refusal_free_failures",
     .type = YK_INT,
     .off = EO(refusal_free_failures),
     .def = "10",
     .min = 1,
     .max = 1000000},
    {.name = "refusal_window",
     .type = YK_DUR,
     .off = EO(refusal_window_ms),
     .def = "15m",
     .min = SEC,
     .max = DAY},
    {.name = "refusal_backoff",
     .type = YK_DUR,
     .off = EO(refusal_backoff_ms),
     .def = "1s",
     .min = 100,
     .max = 3600 * SEC},
    {.name = "refusal_backoff_max",
     .type = YK_DUR,
     .off = EO(refusal_backoff_max_ms),
     .def = "15m",
     .min = 100,
     .max = DAY},
    {.name = "portal_per_address",
     .type = YK_INT,
     .off = EO(portal_per_address),
     .def = "60",
     .min = 1,
     .max = 1000000},
    {.name = "portal_per_key",
     .type = YK_INT,
     .off = EO(portal_per_key),
     .def = "20",
     .min = 1,
     .max = 1000000},
    {.name = "portal_window",
     .type = YK_DUR,
     .off = EO(portal_window_ms),
     .def = "1m",
     .min = SEC,
     .max = DAY},
    {.name = "org", .type = YK_STR, .off = EO(org), .def = "easgate"},
    {.name = "identifier", .type = YK_STR, .off = EO(identifier), .def = "org.easgate.enroll"},
    {.check = enr_check},
};

static const struct conf_section enr_section = {
    .name = "enroll",
    .size = sizeof(struct enr_cfg),
    .keys = enr_keys,
};

int enr_cfg_register(void)
{
    int rc = conf_register_section(&enr_section);
    return rc == -EEXIST ? 0 : rc;
}

const struct enr_cfg *enr_cfg_get(const struct conf *c)
{
    return conf_section(c, "enroll");
}
