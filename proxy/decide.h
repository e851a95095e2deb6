/*
 * decide: the decision point of an ActiveSync request.
 *
 *   head  -> identity (easq) -> [Provision/Settings/Ping: read the small body
 *            first for DeviceInformation or HeartbeatInterval]
 *         -> device state (the seam for the state store: may answer later)
 *         -> pol_decide -> forward, or answer in the client's protocol form.
 *
 * Every path ends in exactly one of conn_answer or up_acquire, so a client
 * is never left without an answer.
 */
#ifndef EG_DECIDE_H
#define EG_DECIDE_H

struct conn;

/* The head of a /Microsoft-Server-ActiveSync request is complete. */
void decide_eas_head(struct conn *c);
/* The body read by conn_read_body_first is complete. */
void decide_eas_body(struct conn *c);
/* The connection is going away: drop any pending state lookup. */
void decide_cancel(struct conn *c);

#endif
