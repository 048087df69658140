/*
 * carved's configuration file (/etc/carve/carved.conf). Every key, its type,
 * bounds and default live in one table in conf.c; the README's configuration
 * reference mirrors it. Unknown sections/keys and bad values are errors that
 * name file:line.
 */
#ifndef CARVE_CONF_H
#define CARVE_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "common/error.h"
#include "common/log.h"

#define CONF_DEFAULT_PATH "/etc/carve/carved.conf"

/* A list value ("a, b, c"): names checked like VM names, each listed once. */
struct conf_names {
	char **cn_names;            /* owned */
	size_t cn_count;
};

struct carved_conf {
	/* [agent] */
	char *node_name;            /* default: the host name */
	char *state_dir;            /* default: /var/lib/carve */
	char *socket;               /* default: /run/carve/carved.sock */
	char *socket_group;         /* default: carve (mutations: root or this group) */
	enum log_level log_level;   /* default: info */
	unsigned max_concurrent_ops;/* default: 4, 1..64 */
	unsigned stop_timeout_s;    /* default: 60, graceful stop before force */
	/* [libvirt] */
	char *uri;                  /* default: qemu:///system */
	char *domain_type;          /* auto|kvm|qemu (default auto) */
	char *kernel_dir;           /* default: none = direct kernel boot off */
	char *console_log_dir;      /* default: /var/log/libvirt/qemu */
	char *storage_pool;         /* default: carve */
	/* [capacity] */
	unsigned reserved_vcpus;    /* default: 0 */
	unsigned long long reserved_memory_mib;  /* default: 512 */
	unsigned long long reserved_disk_gib;    /* default: 0 */
	double cpu_allocation_ratio;   /* default: 4.0 */
	double ram_allocation_ratio;   /* default: 1.0 */
	double disk_allocation_ratio;  /* default: 1.0 */
	/* [control_plane] (no url = standalone) */
	char *cp_url;
	char *cp_ca_file;
	char *cp_cert_file;
	char *cp_key_file;
	char *cp_bootstrap_token_file;
	/* [images] */
	char *image_cache_dir;      /* default: none = state_dir/images */
	unsigned long long max_image_gib;   /* default: 50 */
	unsigned download_timeout_s;        /* default: 3600 */
	char *image_ca_file;        /* default: none = the system CA store */
	unsigned gc_interval_s;     /* default: 3600; 0 = no periodic GC */
	unsigned gc_unused_age_s;   /* default: 7 days; 0 = never for age */
	double max_cache_gib;       /* default: 0 = no cap */
	/* [resize] */
	unsigned max_vcpus_factor;  /* default: 2 (maximum = factor x vcpus) */
	unsigned max_memory_factor; /* default: 2 (maximum = factor x memory) */
	/* [metrics] */
	char *metrics_listen;       /* host:port, default: none = off */
	/* [network]: what VMs may attach to (default: nothing) */
	struct conf_names networks; /* libvirt network names */
	struct conf_names bridges;  /* host bridge names (at most 15 bytes) */
	/* [migration] */
	char *mig_libvirt_uri;      /* advertised to sources; none = no incoming */
	char *mig_address;          /* migration data address, or none */
	bool mig_tls;               /* default: false */
	unsigned mig_max_incoming;  /* default: 1 */
	unsigned mig_max_outgoing;  /* default: 1 */
};

/* Fill with the defaults (allocating the default strings). */
void conf_defaults(struct carved_conf *conf);
/*
 * Load path over the defaults. On error, err is CARVE_EINVAL with
 * "path:line: message" and conf is left with defaults (still to be freed).
 */
int conf_load(const char *path, struct carved_conf *conf, struct carve_error *err);
int conf_load_buf(const char *buf, size_t len, const char *name,
    struct carved_conf *conf, struct carve_error *err);
/* Frees every string in conf and sets it to NULL; conf itself is the caller's. */
void conf_free(struct carved_conf *conf);
/*
 * Print the configuration reference (every section and key with its default,
 * allowed values and meaning) as Markdown, from the same table the parser
 * uses, so the README cannot drift from the code.
 */
void conf_print_reference(FILE *out);

/* True when name is on the list. */
bool conf_names_has(const struct conf_names *list, const char *name);

#endif
