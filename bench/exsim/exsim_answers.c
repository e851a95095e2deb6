/*
 * exsim_answers: the WBXML answer bodies, built with the bench WBXML writer.
 * Element order follows the response schemas in MS-ASCMD section 6 and
 * MS-ASPROV section 6.3; tokens are MS-ASWBXML's. Sizes are targets: items
 * are added until the body reaches at least the size asked for.
 */
#include "bench/exsim/exsim.h"

#include <stdio.h>
#include <stdlib.h>

#include "bench/lib/beas.h"

/* Tokens, by code page. */
enum {
    AS_SYNC = 0x05,
    AS_ADD = 0x07,
    AS_SYNCKEY = 0x0B,
    AS_SERVERID = 0x0D,
    AS_STATUS = 0x0E,
    AS_COLLECTION = 0x0F,
    AS_COLLECTIONID = 0x12,
    AS_COMMANDS = 0x16,
    AS_COLLECTIONS = 0x1C,
    AS_APPDATA = 0x1D,
    FH_DISPLAYNAME = 0x07,
    FH_SERVERID = 0x08,
    FH_PARENTID = 0x09,
    FH_TYPE = 0x0A,
    FH_STATUS = 0x0C,
    FH_CHANGES = 0x0E,
    FH_ADD = 0x0F,
    FH_SYNCKEY = 0x12,
    FH_FOLDERSYNC = 0x16,
    FH_COUNT = 0x17,
    GIE_GIE = 0x05,
    GIE_COLLECTION = 0x08,
    GIE_COLLECTIONID = 0x0A,
    GIE_ESTIMATE = 0x0C,
    GIE_RESPONSE = 0x0D,
    GIE_STATUS = 0x0E,
    PING_PING = 0x05,
    PING_STATUS = 0x07,
    PROV_PROVISION = 0x05,
    PROV_POLICIES = 0x06,
    PROV_POLICY = 0x07,
    PROV_POLICYTYPE = 0x08,
    PROV_POLICYKEY = 0x09,
    PROV_DATA = 0x0A,
    PROV_STATUS = 0x0B,
    PROV_DOC = 0x0D,
    PROV_PWENABLED = 0x0E,
    ASB_TYPE = 0x06,
    ASB_BODY = 0x0A,
    ASB_DATA = 0x0B,
    ASB_ESTSIZE = 0x0C,
    SET_SETTINGS = 0x05,
    SET_STATUS = 0x06,
    SET_DEVINFO = 0x16,
    IO_ITEMOPS = 0x05,
    IO_FETCH = 0x06,
    IO_PROPERTIES = 0x0B,
    IO_STATUS = 0x0D,
    IO_RESPONSE = 0x0E,
};

#define ITEM_BODY 1024 /* bytes of body text per simulated mail item */

static int finish(struct bwx *w, struct exsim_body *b)
{
    if (w->err || w->depth != 0) {
        bwx_free(w);
        return -1;
    }
    b->buf = w->buf;
    b->len = w->len;
    return 0;
}

void exsim_body_free(struct exsim_body *b)
{
    free(b->buf);
    b->buf = NULL;
    b->len = 0;
}

static const char *folder_names[] = {"Inbox",  "Drafts",   "Deleted Items", "Sent Items",
                                     "Outbox", "Calendar", "Contacts",      "Tasks",
                                     "Notes",  "Journal",  "Junk Email",    "Archive"};
/* MS-ASCMD 2.2.3.186.3 folder types matching the names above */
static const int folder_types[] = {2, 3, 4, 5, 6, 8, 9, 7, 10, 11, 12, 1};

int exsim_foldersync(struct exsim_body *b, size_t size)
{
    struct bwx w;
    bwx_begin(&w);
    bwx_open(&w, BWX_FOLDER, FH_FOLDERSYNC);
    bwx_int(&w, BWX_FOLDER, FH_STATUS, 1);
    bwx_text(&w, BWX_FOLDER, FH_SYNCKEY, "1");
    bwx_open(&w, BWX_FOLDER, FH_CHANGES);
    /* about 30 bytes a folder; at least the 12 standard ones */
    size_t n = size / 30;
    if (n < 12)
        n = 12;
    if (n > 100000)
        n = 100000;
    bwx_int(&w, BWX_FOLDER, FH_COUNT, (long)n);
    for (size_t i = 0; i < n; i++) {
        char id[32], name[48];
        snprintf(id, sizeof(id), "%zu", i + 1);
        if (i < 12)
            snprintf(name, sizeof(name), "%s", folder_names[i]);
        else
            snprintf(name, sizeof(name), "Folder %zu", i + 1);
        bwx_open(&w, BWX_FOLDER, FH_ADD);
        bwx_text(&w, BWX_FOLDER, FH_SERVERID, id);
        bwx_text(&w, BWX_FOLDER, FH_PARENTID, "0");
        bwx_text(&w, BWX_FOLDER, FH_DISPLAYNAME, name);
        bwx_int(&w, BWX_FOLDER, FH_TYPE, i < 12 ? folder_types[i] : 12);
        bwx_close(&w);
    }
    bwx_close(&w);
    bwx_close(&w);
    return finish(&w, b);
}

static void mail_body(struct bwx *w, size_t n)
{
    bwx_open(w, BWX_ASBASE, ASB_BODY);
    bwx_int(w, BWX_ASBASE, ASB_TYPE, 1);
    bwx_int(w, BWX_ASBASE, ASB_ESTSIZE, (long)n);
    bwx_filler(w, BWX_ASBASE, ASB_DATA, n);
    bwx_close(w);
}

int exsim_sync(struct exsim_body *b, size_t size)
{
    struct bwx w;
    bwx_begin(&w);
    bwx_open(&w, BWX_AIRSYNC, AS_SYNC);
    bwx_open(&w, BWX_AIRSYNC, AS_COLLECTIONS);
    bwx_open(&w, BWX_AIRSYNC, AS_COLLECTION);
    bwx_text(&w, BWX_AIRSYNC, AS_SYNCKEY, "2");
    bwx_text(&w, BWX_AIRSYNC, AS_COLLECTIONID, "1");
    bwx_int(&w, BWX_AIRSYNC, AS_STATUS, 1);
    if (size > w.len + 8) {
        bwx_open(&w, BWX_AIRSYNC, AS_COMMANDS);
        for (unsigned i = 1; w.len + 8 < size && !w.err; i++) {
            char id[32];
            snprintf(id, sizeof(id), "1:%u", i);
            size_t left = size - w.len;
            size_t n = left > ITEM_BODY + 40 ? ITEM_BODY : (left > 40 ? left - 40 : 1);
            bwx_open(&w, BWX_AIRSYNC, AS_ADD);
            bwx_text(&w, BWX_AIRSYNC, AS_SERVERID, id);
            bwx_open(&w, BWX_AIRSYNC, AS_APPDATA);
            mail_body(&w, n);
            bwx_close(&w);
            bwx_close(&w);
        }
        bwx_close(&w);
    }
    bwx_close(&w);
    bwx_close(&w);
    bwx_close(&w);
    return finish(&w, b);
}

int exsim_estimate(struct exsim_body *b)
{
    struct bwx w;
    bwx_begin(&w);
    bwx_open(&w, BWX_GIE, GIE_GIE);
    bwx_open(&w, BWX_GIE, GIE_RESPONSE);
    bwx_int(&w, BWX_GIE, GIE_STATUS, 1);
    bwx_open(&w, BWX_GIE, GIE_COLLECTION);
    bwx_text(&w, BWX_GIE, GIE_COLLECTIONID, "1");
    bwx_int(&w, BWX_GIE, GIE_ESTIMATE, 5);
    bwx_close(&w);
    bwx_close(&w);
    bwx_close(&w);
    return finish(&w, b);
}

int exsim_itemops(struct exsim_body *b, size_t size)
{
    struct bwx w;
    bwx_begin(&w);
    bwx_open(&w, BWX_ITEMOPS, IO_ITEMOPS);
    bwx_int(&w, BWX_ITEMOPS, IO_STATUS, 1);
    bwx_open(&w, BWX_ITEMOPS, IO_RESPONSE);
    bwx_open(&w, BWX_ITEMOPS, IO_FETCH);
    bwx_int(&w, BWX_ITEMOPS, IO_STATUS, 1);
    bwx_text(&w, BWX_AIRSYNC, AS_SERVERID, "1:1");
    bwx_open(&w, BWX_ITEMOPS, IO_PROPERTIES);
    mail_body(&w, size > 80 ? size - 80 : 1);
    bwx_close(&w);
    bwx_close(&w);
    bwx_close(&w);
    bwx_close(&w);
    return finish(&w, b);
}

int exsim_ping(struct exsim_body *b, int status)
{
    struct bwx w;
    bwx_begin(&w);
    bwx_open(&w, BWX_PING, PING_PING);
    bwx_int(&w, BWX_PING, PING_STATUS, status);
    bwx_close(&w);
    return finish(&w, b);
}

static void devinfo_ack(struct bwx *w)
{
    bwx_open(w, BWX_SETTINGS, SET_DEVINFO);
    bwx_int(w, BWX_SETTINGS, SET_STATUS, 1);
    bwx_close(w);
}

int exsim_provision(struct exsim_body *b, int ack, int devinfo)
{
    struct bwx w;
    bwx_begin(&w);
    bwx_open(&w, BWX_PROVISION, PROV_PROVISION);
    if (devinfo)
        devinfo_ack(&w);
    bwx_int(&w, BWX_PROVISION, PROV_STATUS, 1);
    bwx_open(&w, BWX_PROVISION, PROV_POLICIES);
    bwx_open(&w, BWX_PROVISION, PROV_POLICY);
    bwx_text(&w, BWX_PROVISION, PROV_POLICYTYPE, "MS-EAS-Provisioning-WBXML");
    bwx_int(&w, BWX_PROVISION, PROV_STATUS, 1);
    bwx_text(&w, BWX_PROVISION, PROV_POLICYKEY,
             ack ? EXSIM_FINAL_POLICY_KEY : EXSIM_TEMP_POLICY_KEY);
    if (!ack) {
        bwx_open(&w, BWX_PROVISION, PROV_DATA);
        bwx_open(&w, BWX_PROVISION, PROV_DOC);
        bwx_int(&w, BWX_PROVISION, PROV_PWENABLED, 0);
        bwx_close(&w);
        bwx_close(&w);
    }
    bwx_close(&w);
    bwx_close(&w);
    bwx_close(&w);
    return finish(&w, b);
}

int exsim_settings(struct exsim_body *b, int devinfo)
{
    struct bwx w;
    bwx_begin(&w);
    bwx_open(&w, BWX_SETTINGS, SET_SETTINGS);
    bwx_int(&w, BWX_SETTINGS, SET_STATUS, 1);
    if (devinfo)
        devinfo_ack(&w);
    bwx_close(&w);
    return finish(&w, b);
}
