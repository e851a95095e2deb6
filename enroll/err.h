/*
 * enr_err: the error codes every enroll/ module returns (0 or negative).
 *
 * They map one to one onto the HTTP status the enrollment endpoint answers
 * (enr_err_status), so a function deep in the CA code can say "the CSR is
 * weak" and the device gets a 422 with the sentence the function wrote in
 * err, never a 500 for its own mistake.
 */
#ifndef EG_ENR_ERR_H
#define EG_ENR_ERR_H

enum enr_err {
    ENR_OK = 0,
    ENR_EINVAL = -1,    /* malformed input (bad key characters, unparsable CSR, bad DeviceId) */
    ENR_EWEAK = -2,     /* a key too weak or of a curve we do not accept */
    ENR_ESIG = -3,      /* a CSR whose signature does not verify */
    ENR_EKEY = -4,      /* enrollment key unknown, expired, revoked or used up */
    ENR_ECONFLICT = -5, /* the DeviceId is bound to another user */
    ENR_EEXIST = -6,    /* refusing to overwrite (a CA that exists) */
    ENR_EIO = -7,       /* a file could not be read or written */
    ENR_ECRYPTO = -8,   /* OpenSSL failed where it should not */
    ENR_EDB = -9,       /* the registry failed */
    ENR_ENOMEM = -10,
    ENR_ENOTFOUND = -11, /* no such certificate / invitation */
    ENR_EUNAVAIL = -12,  /* a server it depends on (the directory) did not answer */
};

/* The HTTP status for an error: 400, 403 (key), 404, 409, 422, 500. */
int enr_err_status(int err);

#endif
