/*
 * ews: which operation an Exchange Web Services request asks for.
 *
 * Mail apps that use EWS only for push (Sophos's "allow EWS subscriptions"
 * option) need Subscribe, GetEvents, GetStreamingEvents and Unsubscribe and
 * nothing else; every other EWS operation reads or changes the mailbox and
 * must not pass a gate that filters ActiveSync. The operation is the first
 * (and only) element of the SOAP Body, in the EWS messages namespace.
 *
 * It is read with libxml2, not scanned: comments, CDATA, processing
 * instructions, prefixes bound to other namespaces and Body lookalikes in
 * the header are what a real XML parser sees through and a scanner does not.
 * The parser is configured as a gate needs it: no network, no DTD (a SOAP
 * message must not carry one, and refusing it leaves no entity to expand),
 * no entity substitution, no recovery from errors; the caller bounds the
 * size (limits.max_body_read), libxml2 bounds the depth (256).
 *
 * Pure apart from libxml2's own allocations, which end with the call, and
 * from opening libxml2 (dlopen) at the first call: see ews.c for why.
 */
#ifndef EG_EWS_H
#define EG_EWS_H

#include <stdbool.h>
#include <stddef.h>

enum ews_op {
    EWS_OP_OTHER = 0, /* a well-formed request for any other operation */
    EWS_OP_SUBSCRIBE,
    EWS_OP_GETEVENTS,
    EWS_OP_GETSTREAMINGEVENTS,
    EWS_OP_UNSUBSCRIBE,
};

enum ews_err {
    EWS_OK = 0,
    EWS_E_XML = -1,      /* not well-formed XML */
    EWS_E_DTD = -2,      /* a document type declaration */
    EWS_E_ENVELOPE = -3, /* root not a SOAP 1.1/1.2 Envelope */
    EWS_E_BODY = -4,     /* Envelope without exactly one Body after an optional Header */
    EWS_E_OP = -5,       /* Body without exactly one element, or with text beside it */
    EWS_E_INVAL = -6,
};

/* Open and initialise libxml2 now if not done yet (thread-safe); false if
 * it cannot be opened. ews_request_op does it itself; callers need it only
 * to know. */
bool ews_xml_ready(void);

/* The operation a SOAP request body asks for: 0 and *op, or a negative
 * ews_err (the body is not a SOAP request at all). */
int ews_request_op(const char *body, size_t len, enum ews_op *op);

/* Subscribe, GetEvents, GetStreamingEvents or Unsubscribe; false for
 * anything else, malformed bodies included. */
bool ews_is_subscription(const char *body, size_t len);

const char *ews_op_name(enum ews_op op);
const char *ews_strerror(int err);

#endif
