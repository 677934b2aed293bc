/* ui-csrf.h: the dashboard's CSRF tokens: an expiry and an HMAC over it and the operator's certificate. */
#pragma once

#include <stdint.h>

/*
 * Every state change in the dashboard is a POST carrying a token from the page that offered it
 * (docs/fleet.md "Operator dashboard"). The browser sends the operator's client certificate to any
 * site's request to the fleet server, so the certificate alone does not prove the operator meant it;
 * the token does, because only a page of this server holds one and another site cannot read it (same-
 * origin policy, no CORS, frame-ancestors 'none').
 *
 * token = EXPIRY "." hex(HMAC-SHA256(key, "ringil-ui-csrf" NUL CN NUL SERIAL NUL EXPIRY))
 *
 * bound to the certificate (CN and serial: a token taken from one operator's page is refused for any
 * other certificate, a re-issued one of the same name included), valid UI_CSRF_LIFETIME seconds.
 * The key is random per server start: a restart retires every token (the page says to reload).
 */
#define UI_CSRF_LIFETIME (8 * 3600)
#define UI_CSRF_MAX 96

/* key: 32 bytes, or NULL for random ones. Call once, before the workers start. */
int ui_csrf_init(const uint8_t *key);
/* A token for this certificate, valid until now + UI_CSRF_LIFETIME. */
int ui_csrf_make(const char *cn, const char *serial, int64_t now, char buf[static UI_CSRF_MAX]);
/*
 * 0 only when token was made by this server for exactly (cn, serial) and has not expired.
 * -RINGIL_EMALFORMED (missing, not a token), -RINGIL_EEXPIRED (too old, or an expiry further away than
 * a token made now could have), -RINGIL_EBADSIG (made for another certificate, by another key, or forged).
 */
int ui_csrf_check(const char *token, const char *cn, const char *serial, int64_t now);
