/* zz-stub.c: TEMPORARY placeholder for the bundle API until the bundle branch is merged; refuses every upload. */
#include <errno.h>
#include "bundle.h"
int bundle_open(const char *p, bundle **r) { (void)p; (void)r; return -ENOSYS; }
int bundle_verify_manifest(bundle *b, const struct bundle_policy *p) { (void)b; (void)p; return -ENOSYS; }
int bundle_verify_payloads(bundle *b) { (void)b; return -ENOSYS; }
const struct bundle_manifest *bundle_get_manifest(const bundle *b) { (void)b; return 0; }
void bundle_free(bundle *b) { (void)b; }
