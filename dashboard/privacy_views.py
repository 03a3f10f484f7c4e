"""Dashboard page to withdraw a participant (same selector and service as the REST API and
`manage.py withdraw_participant`)."""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from dashboard.views import _study
from elicitation import privacy_selectors, privacy_services
from elicitation.models import ParticipantWithdrawal
from hmix_site.common.exceptions import ApplicationError


class WithdrawForm(forms.Form):
    participant = forms.CharField(
        max_length=128,
        label="Participant",
        help_text="The pseudonym shown in the exports, or the Prolific / MTurk id.",
    )
    mode = forms.ChoiceField(
        choices=ParticipantWithdrawal.Mode.choices,
        widget=forms.RadioSelect,
        initial=ParticipantWithdrawal.Mode.EXCLUDE,
        label="What happens to their responses",
    )
    reason = forms.CharField(max_length=privacy_services.MAX_REASON, required=False)
    confirm = forms.BooleanField(
        label="I understand: their answers leave every label, analysis and export, and deleted "
        "answers cannot be restored."
    )


@login_required
@require_http_methods(["GET", "POST"])
def study_withdraw(request: HttpRequest, slug: str) -> HttpResponse:
    study = _study(request, slug)
    form = WithdrawForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        participant = privacy_selectors.participant_find_by_reference(
            study=study, reference=data["participant"]
        )
        if participant is None:
            form.add_error("participant", "No such participant in this study.")
        else:
            try:
                withdrawal = privacy_services.participant_withdraw(
                    participant=participant,
                    user_id=request.user.pk,
                    mode=data["mode"],
                    reason=data["reason"],
                )
            except ApplicationError as exc:
                form.add_error(None, exc.message)
            except ValidationError as exc:
                form.add_error(None, " ".join(exc.messages))
            else:
                messages.success(
                    request,
                    f"Participant {withdrawal.pseudonym} withdrawn "
                    f"({withdrawal.n_responses} responses {withdrawal.get_mode_display().lower()}"
                    "); labels and analyses are being recomputed.",
                )
                return HttpResponseRedirect(reverse("dashboard:withdraw", kwargs={"slug": slug}))
    withdrawals = privacy_selectors.participant_withdrawal_list(study=study)
    return render(
        request,
        "dashboard/withdraw.html",
        {"study": study, "form": form, "withdrawals": withdrawals},
        status=400 if form.errors else 200,
    )
