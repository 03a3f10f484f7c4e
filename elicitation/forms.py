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
    def __init__(self, *args: object, questions: list[dict[str, object]], **kwargs: object):
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        for i, q in enumerate(questions):
            options = q["options"]
            assert isinstance(options, list)
            self.fields[f"q{i}"] = forms.TypedChoiceField(
                label=str(q["question"]),
                choices=[(j, str(o)) for j, o in enumerate(options)],
                coerce=int,
                widget=forms.RadioSelect,
            )

    def answers(self) -> list[int]:
        return [self.cleaned_data[f"q{i}"] for i in range(len(self.fields))]
