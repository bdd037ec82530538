from django.urls import path

from accounts.api import views

urlpatterns = [
    path("account", views.AccountDetail.as_view(), name="account"),
    path("profile", views.ProfileDetail.as_view(), name="profile"),
]
