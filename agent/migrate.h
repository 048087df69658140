/*
 * Live migration, the agent's side (issue 6; the wire form is in
 * api/command.h and api/openapi.yaml). The control plane drives it:
 *
 *   vm.migrate.prepare  on the destination: admission like a create plus
 *                       [migration] max_incoming, the base image cached,
 *                       the VM's volumes made (overlay on the same base,
 *                       same capacity; the seed from the spec) and a
 *                       durable reservation of its size, kept in
 *                       STATE_DIR/migrations/<vm_id>.json until the finish
 *   vm.migrate          on the source: virDomainMigrateToURI3, peer to
 *                       peer, live, with the destination's disk paths and
 *                       console log in its XML (both the running one,
 *                       DEST_XML, and the persistent one, PERSIST_XML: with
 *                       only the first, the destination's definition keeps
 *                       the source's paths and fails at the next start);
 *                       progress every second from
 *                       the job stats; timeout and cancel abort the job
 *   vm.migrate.cancel   on the source: abort it (never queued behind it)
 *   vm.migrate.finish   on the destination: "arrived" when the domain is
 *                       here, else "released" (volumes deleted); either
 *                       way the reservation goes
 *
 * Every outcome is read from libvirt, so a carved killed mid-way on either
 * host settles the same way after its restart: a job still running is
 * waited for; a domain gone, or shut off because it migrated, is a
 * migration that happened; a domain running here with no job is one that
 * did not (the VM stays).
 *
 * The source does not ask libvirt to undefine its domain
 * (VIR_MIGRATE_UNDEFINE_SOURCE): libvirt keeps the completed job's
 * statistics (downtime, bytes) with the domain object, which that flag
 * would take away before they can be read. carve reads them, then
 * undefines the domain itself; a crash in between is settled by the
 * "shut off because migrated" rule above.
 */
#ifndef CARVE_MIGRATE_H
#define CARVE_MIGRATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/capacity.h"
#include "agent/handlers.h"
#include "api/command.h"
#include "common/error.h"
#include "common/ids.h"

struct agent;

/* ---- handlers (the table in handlers.c refers to them) ---- */

void migrate_prepare_claim(const struct command *cmd, struct cap_request *claim);
int migrate_prepare_admit(struct agent *a, const struct command *cmd,
    struct carve_error *err);
void migrate_prepare_prepare(struct agent *a, const struct command *cmd,
    handler_prepared_cb cb, void *arg);
void migrate_prepare_run(struct handler_job *j);
void migrate_prepare_done(struct agent *a, const struct command *cmd,
    const struct handler_job *j, const struct carve_error *err);

int migrate_admit(struct agent *a, const struct command *cmd,
    struct carve_error *err);
void migrate_run(struct handler_job *j);
void migrate_recover(struct handler_job *j);

void migrate_cancel_run(struct handler_job *j);

void migrate_finish_run(struct handler_job *j);
void migrate_finish_done(struct agent *a, const struct command *cmd,
    const struct handler_job *j, const struct carve_error *err);

/* ---- the destination's domain XML ---- */

/*
 * From the source's migratable domain XML (virDomainGetXMLDesc with
 * VIR_DOMAIN_XML_MIGRATABLE), the XML the destination defines: every disk
 * with a source gets the path disks names for its target (a writable disk
 * without one is an error: its path on this host means nothing there; a
 * listed target the domain lacks is an error too), and every serial or
 * console log file becomes console_log (left alone when NULL). *out is a
 * new string. Parsed with libxml2 without network access or DTDs.
 */
int migrate_dest_xml(const char *xml, const struct vm_disk_path *disks,
    size_t ndisks, const char *console_log, char **out,
    struct carve_error *err);

/* ---- reservations of incoming migrations ---- */

struct migrate_reservation {
	char mr_vm_id[IDS_UUID_LEN + 1];
	char mr_vm_name[IDS_NAME_MAX + 1];
	char mr_command_id[IDS_UUID_LEN + 1];     /* the prepare */
	char mr_source_node[IDS_NAME_MAX + 1];
	struct cap_request mr_claim;
	int64_t mr_created_at_ms;
};

/* From a prepare command: what it reserves. */
void migrate_reservation_of(const struct command *cmd, int64_t now_ms,
    struct migrate_reservation *out);
/*
 * STATE_DIR/migrations/<vm_id>.json, written atomically and fsync'd
 * (worker thread), or deleted (absent is fine).
 */
int migrate_reservation_write(const char *state_dir,
    const struct migrate_reservation *r, struct carve_error *err);
int migrate_reservation_delete(const char *state_dir, const char *vm_id,
    struct carve_error *err);
/*
 * Call cb for every reservation on disk (blocking, start-up). A file that
 * does not decode is reported in the log and skipped.
 */
int migrate_reservations_load(const char *state_dir,
    void (*cb)(const struct migrate_reservation *r, void *arg), void *arg,
    struct carve_error *err);
/* The file's JSON form, and back (strict); for the tests. */
char *migrate_reservation_encode(const struct migrate_reservation *r);
int migrate_reservation_decode(const char *buf, size_t len,
    struct migrate_reservation *out, struct carve_error *err);

/* ---- drain ---- */

/* Whether STATE_DIR/drained exists (start-up). */
bool migrate_drained_load(const char *state_dir);
/* Create (durably) or remove STATE_DIR/drained (worker thread). */
int migrate_drained_store(const char *state_dir, bool drained,
    struct carve_error *err);

#endif
