/*
 * c_enter(token): the tenant context of a pooled statement in one call, so that the pool sends this
 * call and the statement and nothing else.
 *
 * It sets tenantseal.context to the token for the transaction, exactly as
 * set_config('tenantseal.context', token, true) does for the caller (NULL is the empty context), and
 * undoes, when the transaction commits, every setting made for the session in it: what RESET ALL does
 * (ResetAllOptions(), RESET ALL's own implementation), run after the transaction's last statement and
 * after its deferred triggers, so that nothing the statement set for the session (search_path,
 * row_security, statement_timeout, a session-level tenantseal.context ...) carries over to the next user
 * of the connection, nor to the statements the pool sends without a context. A transaction that aborts
 * takes its settings with it. role, session_authorization and the transaction's characteristics are left
 * as RESET ALL leaves them. Both steps are ones every role may take with SQL: calling it grants nothing.
 */
#include "postgres.h"

#include "access/xact.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"

PG_FUNCTION_INFO_V1(ts_enter);

/* c_enter ran in the current transaction: its settings are reset when it commits. */
static bool reset_at_commit = false;
static bool callback_registered = false;

static void
enter_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PRE_PREPARE:
			if (reset_at_commit)
			{
				reset_at_commit = false;
				ResetAllOptions();
			}
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PREPARE:
			reset_at_commit = false;
			break;
		default:
			break;
	}
}

Datum
ts_enter(PG_FUNCTION_ARGS)
{
	const char *tok = PG_ARGISNULL(0) ? "" : text_to_cstring(PG_GETARG_TEXT_PP(0));

	/* As SET and RESET ALL refuse: parallel workers took a copy of the settings when they started. */
	if (IsInParallelMode())
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TRANSACTION_STATE),
				 errmsg("tenantseal: c_enter() cannot run during a parallel operation")));
	if (!callback_registered)
	{
		RegisterXactCallback(enter_xact_callback, NULL);
		callback_registered = true;
	}
	/* The context and source that set_config() (set_config_by_name) uses for its caller. */
	(void) set_config_option("tenantseal.context", tok,
							 superuser() ? PGC_SUSET : PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_LOCAL, true, 0, false);
	reset_at_commit = true;
	PG_RETURN_VOID();
}
