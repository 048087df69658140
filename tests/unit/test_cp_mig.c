/*
 * Unit tests for the migration state machine of api/cp/cp_mig.c
 * (cp_mig_advance): each case is where a migration stands, what happens
 * next, and what an operator would expect carve-cp to do: which command
 * it sends, which state the migration lands in, whether the VM's node
 * becomes the target. Then whole runs, event by event, as carve-cp sees
 * them for the stories the e2e test tells (success, cancel, a timeout that
 * raced the last iteration, a prepare refused for room).
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "api/cp/cp_mig.h"

#define P	CP_MIG_PREPARING
#define M	CP_MIG_MIGRATING
#define F	CP_MIG_FINISHING
#define D	CP_MIG_DONE
#define X	CP_MIG_FAILED

#define NONE	CP_MIG_ACT_NONE
#define SEND_MIGRATE	CP_MIG_ACT_MIGRATE
#define SEND_FINISH	CP_MIG_ACT_FINISH
#define SEND_CANCEL	CP_MIG_ACT_CANCEL
#define REFUSED	(-1)

struct step_case {
	const char		*desc;
	/* before */
	enum cp_mig_state	 state;
	bool			 migrate_sent;
	bool			 migrated;
	bool			 cancel_requested;
	int			 finish_tries;
	enum cp_mig_event	 ev;
	/* after */
	int			 want_act;
	enum cp_mig_state	 want_state;
	bool			 want_move;
	bool			 want_why;	/* a reason of its own */
};

static const struct step_case cases[] = {
	{ "prepared: send vm.migrate to the source",
	    P, false, false, false, 0, CP_MIG_EV_PREPARED,
	    SEND_MIGRATE, M, false, false },
	{ "prepare failed: release the target all the same",
	    P, false, false, false, 0, CP_MIG_EV_PREPARE_FAILED,
	    SEND_FINISH, F, false, false },
	{ "cancel while preparing: skip vm.migrate, finish at once",
	    P, false, false, false, 0, CP_MIG_EV_CANCEL,
	    SEND_FINISH, F, false, false },
	{ "migrated: finish on the target",
	    M, true, false, false, 0, CP_MIG_EV_MIGRATED,
	    SEND_FINISH, F, false, false },
	{ "migration failed: finish on the target too",
	    M, true, false, false, 0, CP_MIG_EV_MIGRATE_FAILED,
	    SEND_FINISH, F, false, false },
	{ "cancel while migrating: vm.migrate.cancel to the source",
	    M, true, false, false, 0, CP_MIG_EV_CANCEL,
	    SEND_CANCEL, M, false, false },
	{ "second cancel: nothing more is sent",
	    M, true, false, true, 0, CP_MIG_EV_CANCEL,
	    NONE, M, false, false },
	{ "cancel while finishing: too late",
	    F, true, true, false, 1, CP_MIG_EV_CANCEL,
	    REFUSED, F, false, false },
	{ "cancel when done: over",
	    D, true, true, false, 1, CP_MIG_EV_CANCEL,
	    REFUSED, D, false, false },
	{ "cancel when failed: over",
	    X, false, false, false, 1, CP_MIG_EV_CANCEL,
	    REFUSED, X, false, false },
	{ "arrived: done, the VM's node is the target",
	    F, true, true, false, 1, CP_MIG_EV_ARRIVED,
	    NONE, D, true, false },
	{ "arrived although vm.migrate failed: libvirt's word wins",
	    F, true, false, false, 1, CP_MIG_EV_ARRIVED,
	    NONE, D, true, false },
	{ "arrived although never sent: failed, the VM stays",
	    F, false, false, false, 1, CP_MIG_EV_ARRIVED,
	    NONE, X, false, true },
	{ "released after a failure: failed, the VM stays",
	    F, true, false, false, 1, CP_MIG_EV_RELEASED,
	    NONE, X, false, false },
	{ "released after a cancel while preparing: failed",
	    F, false, false, true, 1, CP_MIG_EV_RELEASED,
	    NONE, X, false, false },
	{ "released after a success: failed, and says so",
	    F, true, true, false, 1, CP_MIG_EV_RELEASED,
	    NONE, X, false, true },
	{ "finish failed: try again",
	    F, true, false, false, 1, CP_MIG_EV_FINISH_FAILED,
	    SEND_FINISH, F, false, false },
	{ "finish failed for good after a failure: failed",
	    F, true, false, false, CP_MIG_FINISH_TRIES, CP_MIG_EV_FINISH_FAILED,
	    NONE, X, false, true },
	{ "finish failed for good after a success: done (source undefined it)",
	    F, true, true, false, CP_MIG_FINISH_TRIES, CP_MIG_EV_FINISH_FAILED,
	    NONE, D, true, true },
	{ "late prepare result after a cancel: ignored",
	    F, false, false, true, 1, CP_MIG_EV_PREPARED,
	    NONE, F, false, false },
	{ "late prepare failure while migrating: ignored",
	    M, true, false, false, 0, CP_MIG_EV_PREPARE_FAILED,
	    NONE, M, false, false },
	{ "finish outcome while migrating: ignored",
	    M, true, false, false, 0, CP_MIG_EV_ARRIVED,
	    NONE, M, false, false },
	{ "vm.migrate result while preparing: ignored",
	    P, false, false, false, 0, CP_MIG_EV_MIGRATED,
	    NONE, P, false, false },
	{ "results after the end: ignored",
	    D, true, true, false, 1, CP_MIG_EV_MIGRATE_FAILED,
	    NONE, D, false, false },
};

static void
test_step(void **state)
{
	const struct step_case *c = *state;
	struct carve_error err = { 0 };
	struct cp_mig_sm sm = {
		.sm_state = c->state,
		.sm_migrate_sent = c->migrate_sent,
		.sm_migrated = c->migrated,
		.sm_cancel_requested = c->cancel_requested,
		.sm_finish_tries = c->finish_tries,
	};
	const char *why = "stale";
	int act;

	act = cp_mig_advance(&sm, c->ev, &why, &err);
	if (act != c->want_act)
		fail_msg("%s: action %d, want %d (%s)", c->desc, act,
		    c->want_act, err.message);
	if (c->want_act == REFUSED) {
		assert_int_equal(err.code, CARVE_ECONFLICT);
		assert_true(strlen(err.message) > 0);
	} else {
		assert_false(error_isset(&err));
	}
	assert_int_equal(sm.sm_state, c->want_state);
	assert_int_equal(sm.sm_move, c->want_move);
	if (c->want_why)
		assert_non_null(why);
	else if (c->want_act != REFUSED)
		assert_null(why);
}

/* Feed events in order; check the actions and the end. */
struct run {
	const char		*desc;
	enum cp_mig_event	 ev[8];
	int			 act[8];
	size_t			 n;
	enum cp_mig_state	 end;
	bool			 moved;
};

static const struct run runs[] = {
	{ "A to B: the happy path",
	    { CP_MIG_EV_PREPARED, CP_MIG_EV_MIGRATED, CP_MIG_EV_ARRIVED },
	    { SEND_MIGRATE, SEND_FINISH, NONE }, 3, D, true },
	{ "no room on the target: refused at prepare, released",
	    { CP_MIG_EV_PREPARE_FAILED, CP_MIG_EV_RELEASED },
	    { SEND_FINISH, NONE }, 2, X, false },
	{ "cancel mid-way: aborted, stays on the source",
	    { CP_MIG_EV_PREPARED, CP_MIG_EV_CANCEL, CP_MIG_EV_CANCEL,
	      CP_MIG_EV_MIGRATE_FAILED, CP_MIG_EV_RELEASED },
	    { SEND_MIGRATE, SEND_CANCEL, NONE, SEND_FINISH, NONE }, 5, X,
	    false },
	{ "cancel that lost the race: the VM arrived anyway",
	    { CP_MIG_EV_PREPARED, CP_MIG_EV_CANCEL, CP_MIG_EV_MIGRATED,
	      CP_MIG_EV_ARRIVED },
	    { SEND_MIGRATE, SEND_CANCEL, SEND_FINISH, NONE }, 4, D, true },
	{ "finish retried, then it answers",
	    { CP_MIG_EV_PREPARED, CP_MIG_EV_MIGRATED,
	      CP_MIG_EV_FINISH_FAILED, CP_MIG_EV_ARRIVED },
	    { SEND_MIGRATE, SEND_FINISH, SEND_FINISH, NONE }, 4, D, true },
	{ "finish never works, the migration had failed",
	    { CP_MIG_EV_PREPARED, CP_MIG_EV_MIGRATE_FAILED,
	      CP_MIG_EV_FINISH_FAILED, CP_MIG_EV_FINISH_FAILED,
	      CP_MIG_EV_FINISH_FAILED },
	    { SEND_MIGRATE, SEND_FINISH, SEND_FINISH, SEND_FINISH, NONE }, 5,
	    X, false },
};

static void
test_run(void **state)
{
	const struct run *r = *state;
	struct cp_mig_sm sm = { .sm_state = CP_MIG_PREPARING };
	bool moved = false;

	for (size_t i = 0; i < r->n; i++) {
		struct carve_error err = { 0 };
		int act = cp_mig_advance(&sm, r->ev[i], NULL, &err);

		if (act != r->act[i])
			fail_msg("%s: event %zu: action %d, want %d", r->desc, i,
			    act, r->act[i]);
		moved = moved || sm.sm_move;
	}
	assert_int_equal(sm.sm_state, r->end);
	assert_int_equal(moved, r->moved);
	assert_true(cp_mig_state_final(sm.sm_state));
	/* A final migration does nothing whatever arrives. */
	for (int ev = 0; ev < CP_MIG_NEVENTS; ev++) {
		struct carve_error err = { 0 };
		struct cp_mig_sm again = sm;
		int act = cp_mig_advance(&again, (enum cp_mig_event)ev, NULL,
		    &err);

		assert_true(act == NONE || act == REFUSED);
		assert_int_equal(again.sm_state, sm.sm_state);
		assert_false(again.sm_move);
	}
}

static void
test_names(void **state)
{
	enum cp_mig_state s;

	(void)state;
	for (int i = 0; i < CP_MIG_NSTATES; i++) {
		assert_int_equal(cp_mig_state_parse(
		    cp_mig_state_name((enum cp_mig_state)i), &s), 0);
		assert_int_equal(s, i);
	}
	assert_int_equal(cp_mig_state_parse("migrated", &s), -1);
	assert_true(cp_mig_state_final(CP_MIG_DONE));
	assert_true(cp_mig_state_final(CP_MIG_FAILED));
	assert_false(cp_mig_state_final(CP_MIG_FINISHING));
}

#define NCASES	(sizeof(cases) / sizeof(cases[0]))
#define NRUNS	(sizeof(runs) / sizeof(runs[0]))

int
main(void)
{
	struct CMUnitTest tests[NCASES + NRUNS + 1];
	size_t n = 0;

	cmocka_set_message_output(CM_OUTPUT_TAP);
	for (size_t i = 0; i < NCASES; i++) {
		struct CMUnitTest t = { cases[i].desc, test_step, NULL, NULL,
		    (void *)&cases[i] };
		tests[n++] = t;
	}
	for (size_t i = 0; i < NRUNS; i++) {
		struct CMUnitTest t = { runs[i].desc, test_run, NULL, NULL,
		    (void *)&runs[i] };
		tests[n++] = t;
	}
	tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_names);
	return _cmocka_run_group_tests("cp_mig", tests, n, NULL, NULL);
}
