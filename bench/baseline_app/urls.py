from django.urls import path

from bench.baseline_app.views import hit

urlpatterns = [path("hit/<int:key>/", hit)]
