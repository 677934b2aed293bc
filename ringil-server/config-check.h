/* config-check.h: start-up checks of ringil-server's parsed config (separate from the key parser). */
#pragma once

#include <stdint.h>

#include "server.h"

/*
 * Check what parsing cannot: listen addresses, the server certificate (serverAuth, not expired, its key
 * matches), the CAs (CA:TRUE), readable files, writable parents of db and store. Logs one line per
 * problem ("FILE: …", like the loader's messages) and returns -EINVAL if there was any.
 */
int server_config_check(const char *file, const struct server_config *c);

/* HOST:PORT with a port 0..65535: 0, -EINVAL (shape), -ERANGE (port). */
int server_check_listen(const char *spec, uint32_t *ret_port);
