/*
 * The local control protocol between carvectl and carved, over the Unix
 * socket ([agent] socket). Newline-delimited JSON, one request and one
 * response per line, any number of requests per connection, in order.
 *
 *   request:  {"verb":"vm.create","args":{...}}          ("args" optional)
 *   response: {"ok":true,"result":<any JSON>}
 *          or {"ok":false,"error":{"code":"not_found","message":"..."}}
 *
 * Verbs (server side in control.c; mutating ones need root or the socket
 * group, checked with SO_PEERCRED/SO_PEERGROUPS):
 *   status                     -> agent status object
 *   capacity                   -> capacity + host inventory
 *   vm.list                    -> [vm, ...]
 *   vm.show     {id}           -> vm          (id: UUID or name)
 *   vm.create   {name,vcpus,memory_mib,disk_gib?,kernel?,initrd?,cmdline?,
 *                image?,ssh_authorized_keys?,user_data?,data_disks?,
 *                command_id?,vm_id?}                       (mutating)
 *   vm.start|vm.reboot|vm.destroy {id,command_id?}          (mutating)
 *   vm.rebuild  {id,image?,command_id?}                     (mutating)
 *   vm.stop     {id,force?,timeout_s?,command_id?}          (mutating)
 *   vm.resize   {id,vcpus?,memory_mib?,command_id?}         (mutating)
 *                              -> command result (api/command.h wire form)
 *   commands    {limit?}       -> [command result, ...] newest first
 *   log.level   {level}        -> {"level"}                 (mutating)
 *   images                     -> [{sha256,format,bytes,last_used_at,
 *                                   vms:[{id,name?}],pins,fetching,in_use}]
 *   images.gc                  -> {deleted:[{sha256,format,bytes,
 *                                   last_used_at,reason,error?}],kept,
 *                                   bytes_before,bytes_after,freed_bytes}
 *                                                           (mutating)
 *   node.drain | node.undrain  -> {"schedulable"}           (mutating)
 *   command.submit {command}   -> command result   (root only, standalone)
 *                              command: a command in wire form
 */
#ifndef CARVE_CTL_PROTO_H
#define CARVE_CTL_PROTO_H

#include <stddef.h>

#include <json-c/json.h>

#include "common/error.h"

#define CTL_MAX_LINE   (1024 * 1024)
#define CTL_VERB_MAX   32

struct ctl_request {
	char verb[CTL_VERB_MAX + 1];
	json_object *args;   /* owned; always an object (empty if absent) */
};

/*
 * Decode one request line (without its '\n'). Rejects non-objects, unknown
 * top-level keys, a missing/invalid verb (1..32 bytes of [a-z.]) and
 * non-object args with CARVE_EINVAL. The verb is not checked against the
 * server's table here.
 */
int ctl_request_decode(const char *buf, size_t len, struct ctl_request *out,
    struct carve_error *err);
void ctl_request_clear(struct ctl_request *req);

/* Encoders return a newly allocated line ending in '\n'. */
char *ctl_request_encode(const char *verb, json_object *args /* borrowed, may be NULL */);
char *ctl_response_ok(json_object *result /* borrowed, may be NULL */);
char *ctl_response_error(const struct carve_error *e);

/*
 * Decode a response line. Returns 0 with *result (new reference, may be a
 * JSON null) when ok; 1 with *remote filled when the server answered an
 * error; -1 with err set when the line itself is malformed.
 */
int ctl_response_decode(const char *buf, size_t len, json_object **result,
    struct carve_error *remote, struct carve_error *err);

#endif
