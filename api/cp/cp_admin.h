/*
 * carve-cp's admin API (the operator's or platform's side): create, list,
 * show, act on and delete VMs; list and show nodes; show commands. Every
 * call that changes a VM stores a command for its node and wakes the
 * node's long poll; the answer (202) carries the command's id to follow.
 */
#ifndef CARVE_CP_ADMIN_H
#define CARVE_CP_ADMIN_H

#include "api/cp/cp_http.h"
#include "common/error.h"

int cp_admin_vm_create(struct cp_req *r, struct carve_error *err);
int cp_admin_vm_list(struct cp_req *r, struct carve_error *err);
int cp_admin_vm_get(struct cp_req *r, struct carve_error *err);
int cp_admin_vm_delete(struct cp_req *r, struct carve_error *err);
int cp_admin_vm_action(struct cp_req *r, struct carve_error *err);
/*
 * Snapshots: create (body: vm.snapshot.create's args), list (from the VM's
 * last report), revert and delete (the name in the path). Changes answer
 * 202 {"command_id"}; whether the snapshot exists is the agent's to say
 * (the command fails with not_found or conflict).
 */
int cp_admin_snapshot_create(struct cp_req *r, struct carve_error *err);
int cp_admin_snapshot_list(struct cp_req *r, struct carve_error *err);
int cp_admin_snapshot_revert(struct cp_req *r, struct carve_error *err);
int cp_admin_snapshot_delete(struct cp_req *r, struct carve_error *err);
int cp_admin_node_list(struct cp_req *r, struct carve_error *err);
int cp_admin_node_get(struct cp_req *r, struct carve_error *err);
int cp_admin_node_delete(struct cp_req *r, struct carve_error *err);
int cp_admin_command_get(struct cp_req *r, struct carve_error *err);

#endif
