"""The outcome outbox relay: publishes outcomes whose first publication failed."""
import logging

import azure.functions as func

from shared.bootstrap import services

bp = func.Blueprint()
log = logging.getLogger(__name__)


@bp.timer_trigger(arg_name="timer", schedule="0 */5 * * * *", run_on_startup=False)
def outcome_outbox_relay(timer: func.TimerRequest) -> None:
    sent = services().validation.relay_outbox()
    if sent:
        log.info("outbox relay published %d outcomes", sent)
