/* nix-cache.h: the Nix binary-cache module as a whole: narinfo and signatures (nix-narinfo.h), the
 * bundle's closure listing (nix-closure.h) and the drone's mirror of the fleet's cache (nix-mirror.h). */
#pragma once

#include "nix-closure.h"
#include "nix-mirror.h"
#include "nix-narinfo.h"
