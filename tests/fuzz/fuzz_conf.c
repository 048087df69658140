/*
 * Fuzz target for carved.conf: arbitrary bytes through the INI reader, the
 * key table and the cross-key checks (conf_load_buf), over a struct holding
 * the defaults, which is then freed so leaks show up too.
 */
#include "config.h"

#include <stddef.h>
#include <stdint.h>

#include "agent/conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct carved_conf conf;
	struct carve_error err = { 0 };

	conf_defaults(&conf);
	(void)conf_load_buf((const char *)data, size, "fuzz.conf", &conf, &err);
	conf_free(&conf);
	return 0;
}
