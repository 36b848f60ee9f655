#ifndef TURNSTILE_CLIBUV_SHIM_H
#define TURNSTILE_CLIBUV_SHIM_H
#include <uv.h>
#endif
