/* enroll: keys, CA issue/revoke/CRL, CSR checks, QR PNG, profiles, one-transaction enrollment. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "enroll/ca.h"
#include "enroll/enr.h"
#include "enroll/err.h"
#include "enroll/key.h"
#include "enroll/prof.h"
#include "enroll/qr.h"
#include "enroll/srv.h"

#include <sqlite3.h>

#define NOW_MS 1795000000000LL /* 2026-11 */

static char dir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/eg-enr-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void path(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", dir, name);
}

/* ---- keys ---------------------------------------------------------------- */

static void test_key_format(void **state)
{
    (void)state;
    char k[ENR_KEY_SHOWN + 1], k2[ENR_KEY_SHOWN + 1], canon[ENR_KEY_CHARS + 1], err[256];
    assert_int_equal(enr_key_new(k), 0);
    assert_int_equal(enr_key_new(k2), 0);
    assert_string_not_equal(k, k2);
    assert_int_equal(strlen(k), ENR_KEY_SHOWN);
    for (size_t i = 0; k[i]; i++) {
        if ((i + 1) % (ENR_KEY_GROUP + 1) == 0)
            assert_int_equal(k[i], '-');
        else
            assert_non_null(strchr(ENR_KEY_ALPHABET, k[i]));
    }
    assert_int_equal(enr_key_canon(k, canon, err, sizeof(err)), 0);
    assert_int_equal(strlen(canon), ENR_KEY_CHARS);
    /* lower case and spaces are forgiven */
    char lower[64];
    for (size_t i = 0; i <= strlen(k); i++)
        lower[i] = (char)(k[i] == '-' ? ' ' : (k[i] >= 'A' && k[i] <= 'Z' ? k[i] + 32 : k[i]));
    char c2[ENR_KEY_CHARS + 1];
    assert_int_equal(enr_key_canon(lower, c2, err, sizeof(err)), 0);
    assert_string_equal(canon, c2);
    /* a bad character is named with its position */
    char bad[64];
    snprintf(bad, sizeof(bad), "%s", k);
    bad[5] = 'O';
    assert_int_equal(enr_key_canon(bad, c2, err, sizeof(err)), ENR_EINVAL);
    assert_non_null(strstr(err, "'O' at position 6"));
    bad[5] = '!';
    assert_int_equal(enr_key_canon(bad, c2, err, sizeof(err)), ENR_EINVAL);
    assert_non_null(strstr(err, "'!' at position 6"));
    assert_int_equal(enr_key_canon("ABCD-EFGH", c2, err, sizeof(err)), ENR_EINVAL);
    assert_non_null(strstr(err, "too short"));
    assert_int_equal(enr_key_canon("", c2, err, sizeof(err)), ENR_EINVAL);
    char big[80];
    memset(big, 'A', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    assert_int_equal(enr_key_canon(big, c2, err, sizeof(err)), ENR_EINVAL);
    assert_non_null(strstr(err, "too long"));
    unsigned char h1[ENR_KEY_HASH], h2[ENR_KEY_HASH];
    assert_int_equal(enr_key_hash(canon, h1), 0);
    assert_int_equal(enr_key_canon(lower, c2, err, sizeof(err)), 0);
    assert_int_equal(enr_key_hash(c2, h2), 0);
    assert_memory_equal(h1, h2, ENR_KEY_HASH);
}

/* ---- QR ------------------------------------------------------------------ */

static void test_qr_png(void **state)
{
    (void)state;
    unsigned char *png = NULL;
    size_t len = 0;
    assert_int_equal(enr_qr_png("https://enroll.example.com/enroll?key=ABCD", 4, &png, &len), 0);
    assert_true(len > 100);
    assert_memory_equal(png, "\x89PNG\r\n\x1a\n", 8);
    assert_memory_equal(png + 12, "IHDR", 4);
    /* the IHDR chunk's CRC is right */
    unsigned long crc = enr_crc32(0, png + 12, 17);
    unsigned long got = (unsigned long)png[29] << 24 | (unsigned long)png[30] << 16 |
                        (unsigned long)png[31] << 8 | png[32];
    assert_int_equal(crc, got);
    assert_memory_equal(png + len - 8, "IEND", 4);
    free(png);
    assert_int_equal(enr_crc32(0, (const unsigned char *)"123456789", 9), 0xcbf43926UL);
}

/* ---- CA ------------------------------------------------------------------ */

static void make_ca(struct enr_ca *ca, enum enr_algo a)
{
    char crt[128], key[128], err[256];
    path(crt, sizeof(crt), "ca.crt");
    path(key, sizeof(key), "ca.key");
    unlink(crt);
    unlink(key);
    assert_int_equal(enr_ca_create(crt, key, "test CA", a, 30, err, sizeof(err)), 0);
    struct stat st;
    assert_int_equal(stat(key, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(enr_ca_create(crt, key, "test CA", a, 30, err, sizeof(err)), ENR_EEXIST);
    assert_int_equal(enr_ca_load(crt, key, ca, err, sizeof(err)), 0);
}

/* A CSR for key (signed by it) as PEM. */
static char *csr_pem(EVP_PKEY *key)
{
    X509_REQ *r = X509_REQ_new();
    X509_REQ_set_pubkey(r, key);
    X509_REQ_sign(r, key, EVP_sha256());
    BIO *b = BIO_new(BIO_s_mem());
    PEM_write_bio_X509_REQ(b, r);
    char *p;
    long n = BIO_get_mem_data(b, &p);
    char *out = strndup(p, (size_t)n);
    BIO_free(b);
    X509_REQ_free(r);
    return out;
}

static void test_ca_issue_revoke(void **state)
{
    (void)state;
    struct enr_ca ca;
    char err[256];
    make_ca(&ca, ENR_ALGO_EC256);
    EVP_PKEY *dev = NULL;
    assert_int_equal(enr_keygen(ENR_ALGO_EC256, &dev, err, sizeof(err)), 0);
    struct enr_subject s = {.user = "alice", .email = "alice@example.com", .device_id = "ABC123"};
    X509 *x = NULL, *y = NULL;
    char sn[ENR_SERIAL_HEX + 1], sn2[ENR_SERIAL_HEX + 1];
    assert_int_equal(enr_ca_issue(&ca, &s, dev, NOW_MS / 1000, 86400, &x, sn, err, sizeof(err)), 0);
    assert_int_equal(enr_ca_issue(&ca, &s, dev, NOW_MS / 1000, 86400, &y, sn2, err, sizeof(err)),
                     0);
    assert_string_not_equal(sn, sn2);
    assert_int_equal(strlen(sn), 32);
    /* CN, SAN URI + e-mail, clientAuth, signed by the CA */
    char cn[64];
    X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof(cn));
    assert_string_equal(cn, "alice");
    GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    assert_non_null(gens);
    assert_int_equal(sk_GENERAL_NAME_num(gens), 2);
    GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, 0);
    assert_int_equal(g->type, GEN_URI);
    assert_string_equal((const char *)ASN1_STRING_get0_data(g->d.uniformResourceIdentifier),
                        "urn:easgate:device:ABC123");
    g = sk_GENERAL_NAME_value(gens, 1);
    assert_int_equal(g->type, GEN_EMAIL);
    GENERAL_NAMES_free(gens);
    assert_true(X509_get_extended_key_usage(x) & XKU_SSL_CLIENT);
    assert_int_equal(X509_verify(x, ca.key), 1);
    assert_int_equal(enr_cert_not_after(x), NOW_MS / 1000 + 86400);
    /* the CRL lists what is revoked and is signed */
    struct enr_revoked rv = {.serial = sn, .revoked_s = NOW_MS / 1000};
    unsigned char *der = NULL;
    size_t len = 0;
    assert_int_equal(enr_ca_crl(&ca, &rv, 1, NOW_MS / 1000, NOW_MS / 1000 + 3600, 7, &der, &len,
                                err, sizeof(err)),
                     0);
    const unsigned char *p = der;
    X509_CRL *crl = d2i_X509_CRL(NULL, &p, (long)len);
    assert_non_null(crl);
    assert_int_equal(X509_CRL_verify(crl, ca.key), 1);
    X509_REVOKED *hit = NULL;
    assert_int_equal(X509_CRL_get0_by_serial(crl, &hit, X509_get0_serialNumber(x)), 1);
    assert_int_equal(X509_CRL_get0_by_serial(crl, &hit, X509_get0_serialNumber(y)), 0);
    X509_CRL_free(crl);
    OPENSSL_free(der);
    /* a CN longer than 64 is refused with a message */
    struct enr_subject longu = {
        .user = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        .device_id = "X"};
    X509 *z = NULL;
    assert_int_equal(enr_ca_issue(&ca, &longu, dev, NOW_MS / 1000, 86400, &z, sn, err, sizeof(err)),
                     ENR_EINVAL);
    X509_free(x);
    X509_free(y);
    EVP_PKEY_free(dev);
    enr_ca_free(&ca);
}

static void test_csr_checks(void **state)
{
    (void)state;
    char err[256];
    EVP_PKEY *pub = NULL;
    /* RSA 1024 is weak */
    EVP_PKEY *weak = EVP_RSA_gen(1024);
    char *pem = csr_pem(weak);
    assert_int_equal(enr_csr_parse((unsigned char *)pem, strlen(pem), &pub, err, sizeof(err)),
                     ENR_EWEAK);
    assert_non_null(strstr(err, "1024 bits is too weak"));
    free(pem);
    EVP_PKEY_free(weak);
    /* P-521 is not accepted */
    EVP_PKEY *p521 = EVP_EC_gen("P-521");
    pem = csr_pem(p521);
    assert_int_equal(enr_csr_parse((unsigned char *)pem, strlen(pem), &pub, err, sizeof(err)),
                     ENR_EWEAK);
    assert_non_null(strstr(err, "secp521r1"));
    free(pem);
    EVP_PKEY_free(p521);
    /* a good one, PEM and DER */
    EVP_PKEY *ok = EVP_EC_gen("P-256");
    X509_REQ *r = X509_REQ_new();
    X509_REQ_set_pubkey(r, ok);
    X509_REQ_sign(r, ok, EVP_sha256());
    unsigned char *der = NULL;
    int dlen = i2d_X509_REQ(r, &der);
    assert_int_equal(enr_csr_parse(der, (size_t)dlen, &pub, err, sizeof(err)), 0);
    EVP_PKEY_free(pub);
    /* one flipped bit in the signature: bad signature */
    der[dlen - 3] ^= 0x01;
    int rc = enr_csr_parse(der, (size_t)dlen, &pub, err, sizeof(err));
    assert_true(rc == ENR_ESIG || rc == ENR_EINVAL);
    if (rc == ENR_ESIG)
        assert_non_null(strstr(err, "signature"));
    OPENSSL_free(der);
    X509_REQ_free(r);
    EVP_PKEY_free(ok);
    /* garbage */
    assert_int_equal(enr_csr_parse((const unsigned char *)"hello", 5, &pub, err, sizeof(err)),
                     ENR_EINVAL);
    assert_non_null(strstr(err, "malformed CSR"));
    assert_int_equal(enr_csr_parse((const unsigned char *)"", 0, &pub, err, sizeof(err)),
                     ENR_EINVAL);
}

/* ---- profiles ------------------------------------------------------------ */

static void test_profile(void **state)
{
    (void)state;
    struct enr_prof p = {.host = "mail.example.com",
                         .user = "CORP\\bob & co",
                         .email = "bob@example.com",
                         .device_id = "ABC",
                         .cert_pem =
                             "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n"};
    char *xml = NULL;
    size_t len = 0;
    assert_int_equal(enr_prof_mobileconfig(&p, &xml, &len), 0);
    assert_non_null(strstr(xml, "<string>com.apple.eas.account</string>"));
    assert_non_null(strstr(xml, "<string>mail.example.com</string>"));
    assert_non_null(strstr(xml, "CORP\\bob &amp; co"));
    assert_non_null(strstr(xml, "<key>SSL</key>"));
    assert_null(strstr(xml, "PayloadCertificateUUID")); /* no identity without a key */
    free(xml);
    char *json = NULL;
    assert_int_equal(enr_prof_android(&p, &json, &len), 0);
    assert_non_null(strstr(json, "\"host\": \"mail.example.com\""));
    free(json);
}

/* ---- enrollment over a registry ------------------------------------------ */

struct world {
    struct core_reg *reg;
    struct core_eng eng;
    struct enr_cfg cfg;
    struct enr_ctx ctx;
    char crt[128], key[128], crl[128];
};

static void world_open(struct world *w)
{
    char db[128], err[256];
    memset(w, 0, sizeof(*w));
    path(db, sizeof(db), "reg.db");
    unlink(db);
    assert_int_equal(core_reg_open(db, &w->reg, err, sizeof(err)), 0);
    struct compliance_rules rules;
    compliance_rules_init(&rules);
    core_eng_init(&w->eng, w->reg, NULL, &rules);
    struct enr_ca ca;
    make_ca(&ca, ENR_ALGO_EC256);
    enr_ca_free(&ca);
    path(w->crt, sizeof(w->crt), "ca.crt");
    path(w->key, sizeof(w->key), "ca.key");
    path(w->crl, sizeof(w->crl), "ca.crl");
    w->cfg.ca.cert = w->crt;
    w->cfg.ca.key = w->key;
    w->cfg.crl_path = w->crl;
    w->cfg.validity_ms = 365 * 86400000LL;
    w->cfg.renew_before_ms = 30 * 86400000LL;
    w->cfg.crl_validity_ms = 7 * 86400000LL;
    w->cfg.key_algo = "ec256";
    w->cfg.public_host = "mail.example.com";
    w->cfg.url = "https://enroll.example.com";
    assert_int_equal(enr_open(&w->ctx, &w->cfg, &w->eng, err, sizeof(err)), 0);
}

static void world_close(struct world *w)
{
    enr_close(&w->ctx);
    core_eng_free(&w->eng);
    core_reg_close(w->reg);
}

static int64_t count(struct world *w, const char *sql)
{
    sqlite3_stmt *s;
    assert_int_equal(sqlite3_prepare_v2(core_reg_sqlite(w->reg), sql, -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return v;
}

static void test_enroll_flow(void **state)
{
    (void)state;
    struct world w;
    world_open(&w);
    char err[512];
    struct enr_invite inv, inv2;
    struct enr_invite_req ir = {.email = "alice@example.com", .user = "alice"};
    assert_int_equal(enr_invite(&w.ctx, &ir, NOW_MS, &inv, err, sizeof(err)), 0);
    assert_non_null(strstr(inv.url, "https://enroll.example.com/enroll?key="));
    /* several invitations per address; the key is stored only as a hash */
    assert_int_equal(enr_invite(&w.ctx, &ir, NOW_MS, &inv2, err, sizeof(err)), 0);
    assert_int_equal(count(&w, "SELECT count(*) FROM enroll_invitations WHERE "
                               "email = 'alice@example.com'"),
                     2);
    assert_int_equal(count(&w, "SELECT count(*) FROM enroll_invitations WHERE "
                               "typeof(key_hash) <> 'blob' OR length(key_hash) <> 32"),
                     0);
    struct enr_invite_req bad = {.email = "not-an-address"};
    assert_int_equal(enr_invite(&w.ctx, &bad, NOW_MS, &inv2, err, sizeof(err)), ENR_EINVAL);

    EVP_PKEY *k = EVP_EC_gen("P-256");
    char *csr = csr_pem(k);
    struct enr_result res;
    struct enr_request rq = {.key = inv.key,
                             .device_id = "dev1abc",
                             .csr = (unsigned char *)csr,
                             .csr_len = strlen(csr),
                             .platform = ENR_PLAT_IOS};
    assert_int_equal(enr_enroll(&w.ctx, &rq, NOW_MS, &res, err, sizeof(err)), 0);
    assert_string_equal(res.device_id, "DEV1ABC");
    assert_string_equal(res.user, "alice");
    assert_non_null(res.profile);
    enr_result_free(&res);
    struct core_device d;
    assert_int_equal(core_reg_device_get(w.reg, "DEV1ABC", &d), 0);
    assert_true(d.managed);
    assert_string_equal(d.user, "alice");
    assert_int_equal(count(&w, "SELECT count(*) FROM enroll_certs"), 1);

    /* the single-use key is used up: refused, nothing written */
    rq.device_id = "dev2";
    assert_int_equal(enr_enroll(&w.ctx, &rq, NOW_MS, &res, err, sizeof(err)), ENR_EKEY);
    assert_non_null(strstr(err, "used already"));
    assert_int_equal(enr_err_status(ENR_EKEY), 403);
    assert_int_equal(core_reg_device_exists(w.reg, "DEV2"), 0);

    /* another user's key for the same device: conflict, and the attempt
     * uses the key (one key must not probe DeviceIds again and again); the
     * answer names no owner, the audit log says what happened */
    struct enr_invite_req ib = {.email = "bob@example.com", .max_uses = 2};
    struct enr_invite ivb;
    assert_int_equal(enr_invite(&w.ctx, &ib, NOW_MS, &ivb, err, sizeof(err)), 0);
    rq.key = ivb.key;
    rq.device_id = "DEV1ABC";
    assert_int_equal(enr_enroll(&w.ctx, &rq, NOW_MS, &res, err, sizeof(err)), ENR_ECONFLICT);
    assert_non_null(strstr(err, "cannot be enrolled with this key"));
    assert_null(strstr(err, "another user"));
    assert_null(strstr(err, "alice"));
    assert_int_equal(
        count(&w, "SELECT uses FROM enroll_invitations WHERE email = 'bob@example.com'"), 1);
    assert_int_equal(count(&w, "SELECT count(*) FROM audit WHERE action = 'enroll.refused' AND "
                               "target = 'DEV1ABC'"),
                     1);
    assert_int_equal(count(&w, "SELECT count(*) FROM enroll_certs"), 1);

    /* weak CSR with a good key: 422-class error, nothing used */
    EVP_PKEY *weak = EVP_RSA_gen(1024);
    char *wcsr = csr_pem(weak);
    struct enr_request rw = {
        .key = ivb.key, .device_id = "dev3", .csr = (unsigned char *)wcsr, .csr_len = strlen(wcsr)};
    assert_int_equal(enr_enroll(&w.ctx, &rw, NOW_MS, &res, err, sizeof(err)), ENR_EWEAK);
    assert_int_equal(
        count(&w, "SELECT uses FROM enroll_invitations WHERE email = 'bob@example.com'"), 1);
    /* server-generated key pair: PKCS#12 with a one-time password */
    rw.csr = NULL;
    rw.csr_len = 0;
    rw.platform = ENR_PLAT_ANDROID;
    assert_int_equal(enr_enroll(&w.ctx, &rw, NOW_MS, &res, err, sizeof(err)), 0);
    assert_non_null(res.p12);
    assert_int_equal(strlen(res.p12_password), 20);
    assert_string_equal(res.profile_type, "application/json");
    char sn3[ENR_SERIAL_HEX + 1];
    snprintf(sn3, sizeof(sn3), "%s", res.serial);
    enr_result_free(&res);
    /* a bad key character is a 400 with the position */
    rw.key = "2222-2222-2222-2222-2222-2222-222O";
    assert_int_equal(enr_enroll(&w.ctx, &rw, NOW_MS, &res, err, sizeof(err)), ENR_EINVAL);
    assert_non_null(strstr(err, "position 34"));
    /* an expired key */
    struct enr_invite_req ie = {.email = "eve@example.com", .expires_ms = NOW_MS + 1000};
    struct enr_invite ive;
    assert_int_equal(enr_invite(&w.ctx, &ie, NOW_MS, &ive, err, sizeof(err)), 0);
    rw.key = ive.key;
    assert_int_equal(enr_enroll(&w.ctx, &rw, NOW_MS + 2000, &res, err, sizeof(err)), ENR_EKEY);
    assert_non_null(strstr(err, "expired"));

    /* revocation writes the CRL with the serial */
    assert_int_equal(enr_revoke(&w.ctx, sn3, NULL, "lost", "test", NOW_MS, err, sizeof(err)), 0);
    FILE *f = fopen(w.crl, "rb");
    assert_non_null(f);
    X509_CRL *crl = d2i_X509_CRL_fp(f, NULL);
    fclose(f);
    assert_non_null(crl);
    assert_int_equal(sk_X509_REVOKED_num(X509_CRL_get_REVOKED(crl)), 1);
    X509_CRL_free(crl);
    assert_int_equal(enr_revoke(&w.ctx, sn3, NULL, "lost", "test", NOW_MS, err, sizeof(err)),
                     ENR_ENOTFOUND);

    /* renewal: too early, then within renew_before with the same key */
    struct enr_result rn;
    assert_int_equal(enr_renew(&w.ctx, "DEV1ABC", (unsigned char *)csr, strlen(csr), NOW_MS, &rn,
                               err, sizeof(err)),
                     ENR_ECONFLICT);
    int64_t late = NOW_MS + 340 * 86400000LL;
    assert_int_equal(enr_renew(&w.ctx, "DEV1ABC", (unsigned char *)csr, strlen(csr), late, &rn, err,
                               sizeof(err)),
                     0);
    assert_string_equal(rn.user, "alice");
    enr_result_free(&rn);
    assert_int_equal(count(&w, "SELECT count(*) FROM enroll_certs WHERE device_id = 'DEV1ABC' "
                               "AND revoke_reason = 'superseded'"),
                     1);
    /* a CSR from another key cannot renew */
    EVP_PKEY *k2 = EVP_EC_gen("P-256");
    char *csr2 = csr_pem(k2);
    assert_int_equal(enr_renew(&w.ctx, "DEV1ABC", (unsigned char *)csr2, strlen(csr2), late, &rn,
                               err, sizeof(err)),
                     ENR_EKEY);
    free(csr2);
    EVP_PKEY_free(k2);
    free(wcsr);
    EVP_PKEY_free(weak);
    free(csr);
    EVP_PKEY_free(k);
    /* a revocation written elsewhere (the admin API, without the CA key) is
     * listed at the enrollment role's next look, however fresh the CRL is */
    enr_crl_update(&w.ctx, true, NOW_MS, err, sizeof(err));
    int64_t revoked_before = count(&w, "SELECT count(*) FROM enroll_certs WHERE revoked_ms > 0 "
                                       "AND not_after_ms > 1795000000003");
    int64_t crl_n = count(&w, "SELECT value FROM meta WHERE key = 'crl_number'");
    assert_int_equal(enr_crl_update(&w.ctx, false, NOW_MS + 1, err, sizeof(err)), 0);
    assert_int_equal(count(&w, "SELECT value FROM meta WHERE key = 'crl_number'"), crl_n);
    struct core_cert *cts = calloc(4, sizeof(*cts));
    size_t ncts = 0;
    assert_int_equal(core_reg_cert_list(w.reg, "DEV1ABC", cts, 4, &ncts), 0);
    size_t live = 0;
    while (live < ncts && cts[live].revoked_ms)
        live++;
    assert_true(live < ncts);
    assert_int_equal(core_reg_cert_revoke(w.reg, "DEV1ABC", cts[live].serial, "lost", NOW_MS + 2),
                     0);
    assert_int_equal(core_reg_cert_revoke(w.reg, "DEV1ABC", cts[live].serial, "lost", NOW_MS + 2),
                     CORE_REG_ENOTFOUND);
    free(cts);
    assert_int_equal(enr_crl_update(&w.ctx, false, NOW_MS + 3, err, sizeof(err)), 0);
    assert_int_equal(count(&w, "SELECT value FROM meta WHERE key = 'crl_number'"), crl_n + 1);
    f = fopen(w.crl, "rb");
    assert_non_null(f);
    crl = d2i_X509_CRL_fp(f, NULL);
    fclose(f);
    assert_non_null(crl);
    assert_int_equal(sk_X509_REVOKED_num(X509_CRL_get_REVOKED(crl)), revoked_before + 1);
    X509_CRL_free(crl);
    assert_int_equal(enr_crl_update(&w.ctx, false, NOW_MS + 4, err, sizeof(err)), 0);
    assert_int_equal(count(&w, "SELECT value FROM meta WHERE key = 'crl_number'"), crl_n + 1);

    world_close(&w);
}

/* ---- the HTTPS endpoint's request bodies (enr_srv_handle) ------------------ */

static int post(struct world *w, const char *path, const char *body, char **answer)
{
    struct httpd_req req = {.method = "POST",
                            .path = path,
                            .query = "",
                            .body = body,
                            .body_len = strlen(body),
                            .peer = "127.0.0.1"};
    struct httpd_resp resp = {0};
    enr_srv_handle(&w->ctx, &req, &resp, NOW_MS);
    *answer = resp.body;
    return resp.status;
}

/* One rule for bodies (common/jreq): a key given twice or a field the
 * endpoint does not know is a 400, and nothing is used up or written. */
static void test_srv_bodies(void **state)
{
    (void)state;
    struct world w;
    world_open(&w);
    char err[512], body[1024], *ans;
    struct enr_invite inv;
    struct enr_invite_req ir = {.email = "dave@example.com", .user = "dave", .max_uses = 1};
    assert_int_equal(enr_invite(&w.ctx, &ir, NOW_MS, &inv, err, sizeof(err)), 0);
    static const struct {
        const char *path, *fmt, *why;
    } bad[] = {
        {"/enroll/v1/enroll",
         "{\"key\":\"%s\",\"device_id\":\"DAVE1\",\"device_id\":\"DAVE2\","
         "\"generate_key\":true}",
         "duplicate"},
        {"/enroll/v1/enroll",
         "{\"key\":\"%s\",\"device_id\":\"DAVE1\",\"generate_key\":true,\"colour\":\"red\"}",
         "unknown field 'colour' (known: key, device_id, csr, platform, generate_key)"},
        {"/enroll/v1/enroll", "{\"key\":\"%s\",\"device_id\":\"DAVE1\",\"generate_key\":1}",
         "field 'generate_key' must be true or false"},
        {"/enroll/v1/enroll", "{\"key\":\"%s\",\"generate_key\":true}",
         "field 'device_id' is required"},
        {"/enroll/v1/renew", "{\"key\":\"%s\",\"device_id\":\"DAVE1\",\"csr\":\"x\"}",
         "unknown field 'key' (known: device_id, csr)"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(body, sizeof(body), bad[i].fmt, inv.key);
        int st = post(&w, bad[i].path, body, &ans);
        if (st != 400 || !ans || !strstr(ans, bad[i].why))
            fail_msg("%s %s: %d %s", bad[i].path, body, st, ans ? ans : "");
        free(ans);
    }
    assert_int_equal(count(&w, "SELECT count(*) FROM enroll_certs"), 0);
    /* the invitation (one use) is still there for a body that is right */
    snprintf(body, sizeof(body),
             "{\"key\":\"%s\",\"device_id\":\"DAVE1\",\"generate_key\":true,"
             "\"platform\":\"android\"}",
             inv.key);
    int st = post(&w, "/enroll/v1/enroll", body, &ans);
    if (st != 200)
        fail_msg("enroll: %d %s", st, ans ? ans : "");
    free(ans);
    assert_int_equal(count(&w, "SELECT count(*) FROM enroll_certs"), 1);
    world_close(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_format),      cmocka_unit_test(test_qr_png),
        cmocka_unit_test(test_ca_issue_revoke), cmocka_unit_test(test_csr_checks),
        cmocka_unit_test(test_profile),         cmocka_unit_test(test_enroll_flow),
        cmocka_unit_test(test_srv_bodies),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
