from django import forms


class ConsentForm(forms.Form):
    adult = forms.BooleanField(required=False)
    understood = forms.BooleanField(required=False)
    agree = forms.BooleanField(required=False)
    decline = forms.BooleanField(required=False)

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        if not data.get("decline") and not all(
            data.get(k) for k in ("adult", "understood", "agree")
        ):
            raise forms.ValidationError("Please confirm all three statements to take part.")
        return data


class ComprehensionForm(forms.Form):
    """The check, each question's options listed in `orders` (option numbers in the order to
    show them; the question's own order without it). The values stay the option numbers."""

    def __init__(
        self,
        *args: object,
        questions: list[dict[str, object]],
        orders: list[list[int]] | None = None,
        **kwargs: object,
    ):
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        for i, q in enumerate(questions):
            options = q["options"]
            assert isinstance(options, list)
            order = orders[i] if orders is not None else range(len(options))
            self.fields[f"q{i}"] = forms.TypedChoiceField(
                label=str(q["question"]),
                choices=[(j, str(options[j])) for j in order],
                coerce=int,
                widget=forms.RadioSelect,
            )

    def answers(self) -> list[int]:
        return [self.cleaned_data[f"q{i}"] for i in range(len(self.fields))]
