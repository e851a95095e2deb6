/* enr_err: HTTP status per enrollment error. See err.h. */
#include "enroll/err.h"

int enr_err_status(int err)
{
    switch (err) {
    case ENR_OK:
        return 200;
    case ENR_EINVAL:
        return 400;
    case ENR_EKEY:
        return 403;
    case ENR_ECONFLICT:
    case ENR_EEXIST:
        return 409;
    case ENR_EWEAK:
    case ENR_ESIG:
        return 422;
    case ENR_ENOTFOUND:
        return 404;
    case ENR_EUNAVAIL:
        return 503;
    default:
        return 500;
    }
}
