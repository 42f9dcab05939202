"""The local Graph through Microsoft's own Python SDK (msgraph-sdk) over HTTPS, and raw bodies compared with
the shapes of the examples in Microsoft's v1.0 reference pages for the same calls."""

from __future__ import annotations

import asyncio
import ssl
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from typing import Any, TypeVar

import httpx
import pytest
from kiota_abstractions.authentication import (
    AccessTokenProvider,
    AllowedHostsValidator,
    BaseBearerTokenAuthenticationProvider,
)
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph import GraphRequestAdapter, GraphServiceClient
from msgraph.generated.models.attendee import Attendee
from msgraph.generated.models.attendee_type import AttendeeType
from msgraph.generated.models.body_type import BodyType
from msgraph.generated.models.date_time_time_zone import DateTimeTimeZone
from msgraph.generated.models.email_address import EmailAddress
from msgraph.generated.models.event import Event
from msgraph.generated.models.item_body import ItemBody
from msgraph.generated.models.location import Location
from msgraph.generated.models.online_meeting_provider_type import OnlineMeetingProviderType
from msgraph.generated.models.single_value_legacy_extended_property import SingleValueLegacyExtendedProperty
from msgraph.generated.users.item.calendar.get_schedule.get_schedule_post_request_body import GetSchedulePostRequestBody
from msgraph.generated.users.item.calendar_view.calendar_view_request_builder import CalendarViewRequestBuilder
from msgraph.generated.users.users_request_builder import UsersRequestBuilder

from devtools.cloud import tokens
from devtools.cloud.graph.controls import resolve_user
from devtools.cloud.server import RunningCloud
from devtools.cloud.state import World
from tests.kit import stack_now

CONTOSO = "contoso.example"
ALEX = "alex.wilber@contoso.example"
MEGAN = "megan.bowen@contoso.example"
INTERVIEWS = "interviews@contoso.example"
APP = "6731de76-14a6-49ae-97bc-6eba6914391e"
T = TypeVar("T")

# ---- shapes of Microsoft's documentation examples (v1.0 reference pages) ----------------------------
USER_GET_EXAMPLE: dict[str, Any] = {  # api/user-get.md
    "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users/$entity",
    "businessPhones": ["+1 425 555 0109"],
    "displayName": "Adele Vance",
    "givenName": "Adele",
    "jobTitle": "Retail Manager",
    "mail": "AdeleV@contoso.com",
    "mobilePhone": "+1 425 555 0109",
    "officeLocation": "18/2111",
    "preferredLanguage": "en-US",
    "surname": "Vance",
    "userPrincipalName": "AdeleV@contoso.com",
    "id": "87d349ed-44d7-43e1-9a83-5f2406dee5bd",
}
SCHEDULE_EXAMPLE: dict[str, Any] = {  # api/calendar-getschedule.md
    "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Collection(microsoft.graph.scheduleInformation)",
    "value": [
        {
            "scheduleId": "adelev@contoso.onmicrosoft.com",
            "availabilityView": "000220000",
            "scheduleItems": [
                {
                    "status": "busy",
                    "start": {"dateTime": "2019-03-15T12:00:00.0000000", "timeZone": "Pacific Standard Time"},
                    "end": {"dateTime": "2019-03-15T14:00:00.0000000", "timeZone": "Pacific Standard Time"},
                }
            ],
            "workingHours": {
                "daysOfWeek": ["monday"],
                "startTime": "08:00:00.0000000",
                "endTime": "17:00:00.0000000",
                "timeZone": {"name": "Pacific Standard Time"},
            },
        }
    ],
}
SCHEDULE_ITEM_WITH_DETAILS: dict[str, Any] = {
    "isPrivate": False,
    "status": "busy",
    "subject": "Let's go for lunch",
    "location": "Harry's Bar",
    "start": {"dateTime": "2019-03-15T12:00:00.0000000", "timeZone": "Pacific Standard Time"},
    "end": {"dateTime": "2019-03-15T14:00:00.0000000", "timeZone": "Pacific Standard Time"},
}
EVENT_CREATE_EXAMPLE: dict[str, Any] = {  # api/user-post-events.md, response 1
    "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users('cd209b0b')/events/$entity",
    "@odata.etag": 'W/"ZlnW4RIAV06KYYwlrfNZvQAALfZeRQ=="',
    "id": "AAMkAGI1AAAt9AHjAAA=",
    "createdDateTime": "2017-04-15T03:00:50.7579581Z",
    "lastModifiedDateTime": "2017-04-15T03:00:51.245372Z",
    "changeKey": "ZlnW4RIAV06KYYwlrfNZvQAALfZeRQ==",
    "categories": [],
    "originalStartTimeZone": "Pacific Standard Time",
    "originalEndTimeZone": "Pacific Standard Time",
    "iCalUId": "040000008200E00074C5B7101A82E008",
    "reminderMinutesBeforeStart": 15,
    "isReminderOn": True,
    "hasAttachments": False,
    "subject": "Let's go brunch",
    "bodyPreview": "Does late morning work for you?",
    "importance": "normal",
    "sensitivity": "normal",
    "isAllDay": False,
    "isCancelled": False,
    "isOrganizer": True,
    "responseRequested": True,
    "seriesMasterId": None,
    "showAs": "busy",
    "type": "singleInstance",
    "webLink": "https://outlook.office365.com/owa/?itemid=x",
    "onlineMeetingUrl": None,
    "responseStatus": {"response": "organizer", "time": "0001-01-01T00:00:00Z"},
    "body": {
        "contentType": "html",
        "content": "<html><head></head><body>Does late morning work for you?</body></html>",
    },
    "start": {"dateTime": "2017-04-15T11:00:00.0000000", "timeZone": "Pacific Standard Time"},
    "end": {"dateTime": "2017-04-15T12:00:00.0000000", "timeZone": "Pacific Standard Time"},
    "location": {
        "displayName": "Harry's Bar",
        "locationType": "default",
        "uniqueId": "Harry's Bar",
        "uniqueIdType": "private",
    },
    "locations": [{"displayName": "Harry's Bar", "locationType": "default", "uniqueIdType": "unknown"}],
    "recurrence": None,
    "attendees": [
        {
            "type": "required",
            "status": {"response": "none", "time": "0001-01-01T00:00:00Z"},
            "emailAddress": {"name": "Samantha Booth", "address": "samanthab@contoso.onmicrosoft.com"},
        }
    ],
    "organizer": {"emailAddress": {"name": "Dana Swope", "address": "danas@contoso.onmicrosoft.com"}},
}
MAILBOX_SETTINGS_EXAMPLE: dict[str, Any] = {  # api/user-get-mailboxsettings.md, example 1
    "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Me/mailboxSettings",
    "archiveFolder": "AAMkAGI2TQAAA",
    "timeZone": "UTC",
    "automaticRepliesSetting": {
        "status": "alwaysEnabled",
        "externalAudience": "none",
        "scheduledStartDateTime": {"dateTime": "2016-03-14T07:00:00.0000000", "timeZone": "UTC"},
        "scheduledEndDateTime": {"dateTime": "2016-03-28T07:00:00.0000000", "timeZone": "UTC"},
        "internalReplyMessage": "<html>\n<body>\n</body>\n</html>\n",
        "externalReplyMessage": "<html>\n<body>\n</body>\n</html>\n",
    },
    "language": {"locale": "en-US", "displayName": "English (United States)"},
    "workingHours": {
        "daysOfWeek": ["monday"],
        "startTime": "08:00:00.0000000",
        "endTime": "17:00:00.0000000",
        "timeZone": {"name": "Pacific Standard Time"},
    },
    "dateFormat": "MM/dd/yyyy",
    "timeFormat": "hh:mm tt",
    "delegateMeetingMessageDeliveryOptions": "sendToDelegateOnly",
    "userPurpose": "user",
}


def assert_shape(actual: Any, example: Any, path: str = "$") -> None:
    """Every key of the documented example is present with the same JSON type, recursively (lists by first item)."""
    if example is None:
        return  # documented null: the type of a present value is not fixed by the example
    if isinstance(example, dict):
        assert isinstance(actual, dict), f"{path}: expected an object, got {actual!r}"
        for key, value in example.items():
            assert key in actual, f"{path}: missing {key}"
            assert_shape(actual[key], value, f"{path}.{key}")
    elif isinstance(example, list):
        assert isinstance(actual, list), f"{path}: expected an array, got {actual!r}"
        if example and actual:
            assert_shape(actual[0], example[0], f"{path}[0]")
    elif isinstance(example, bool):
        assert isinstance(actual, bool), f"{path}: expected a boolean, got {actual!r}"
    elif isinstance(example, (int, float)):
        assert isinstance(actual, (int, float)) and not isinstance(actual, bool), f"{path}: expected a number"
    else:
        # String properties are nullable in Graph's schema (mobilePhone, jobTitle, ...): null is a valid value.
        assert actual is None or isinstance(actual, str), f"{path}: expected a string, got {actual!r}"


# ---- clients ---------------------------------------------------------------------------------------
class _StaticToken(AccessTokenProvider):
    def __init__(self, token: str, host: str) -> None:
        self._token = token
        self._validator = AllowedHostsValidator([host])

    async def get_authorization_token(
        self, uri: str, additional_authentication_context: dict[str, Any] | None = None
    ) -> str:
        return self._token

    def get_allowed_hosts_validator(self) -> AllowedHostsValidator:
        return self._validator


def sdk(cloud: RunningCloud, token: str) -> GraphServiceClient:
    host = httpx.URL(cloud.graph_url).host
    adapter = GraphRequestAdapter(BaseBearerTokenAuthenticationProvider(_StaticToken(token, host)))
    adapter.base_url = cloud.graph_url
    return GraphServiceClient(request_adapter=adapter)


@pytest.fixture
def run() -> Iterator[Callable[[Callable[[], Awaitable[Any]]], Any]]:
    """Run SDK coroutines on one event loop per test: the SDK's httpx client is bound to the loop it first used."""
    loop = asyncio.new_event_loop()

    def call(make: Callable[[], Awaitable[T]]) -> T:
        return loop.run_until_complete(make())

    yield call
    loop.close()


def app_token(world: World, *roles: str) -> str:
    tenant = world.tenant_by_id_or_domain(CONTOSO)
    assert tenant is not None
    return tokens.issue_access_token(world, tenant_id=tenant.tenant_id, client_id=APP, roles=set(roles))


def user_token(world: World, upn: str, *scopes: str) -> str:
    user = resolve_user(world, upn)
    return tokens.issue_access_token(
        world, tenant_id=user.tenant_id, client_id=APP, user_id=user.id, scopes=set(scopes)
    )


def raw(cloud: RunningCloud, token: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    with httpx.Client(
        base_url=cloud.graph_url, verify=ssl.create_default_context(cafile=str(cloud.ca_bundle)), timeout=10
    ) as http:
        return http.request(
            method,
            cloud.graph_url + path,
            headers={"Authorization": f"Bearer {token}", **kwargs.pop("headers", {})},
            **kwargs,
        )


# ---- tests -------------------------------------------------------------------------------------------
def test_sdk_reads_me_and_users(cloud: RunningCloud, world: World, run: Any) -> None:
    client = sdk(cloud, user_token(world, MEGAN, "User.Read", "User.ReadBasic.All"))
    me = run(lambda: client.me.get())
    assert me is not None and me.user_principal_name == MEGAN and me.display_name == "Megan Bowen"
    config = RequestConfiguration(
        query_parameters=UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(
            filter="startswith(displayName,'a')", select=["id", "displayName", "mail"], top=5
        )
    )
    users = run(lambda: client.users.get(request_configuration=config))
    assert users is not None and users.value
    assert {u.mail for u in users.value} == {ALEX, "adele.vance@contoso.example"}
    alex = run(lambda: client.users.by_user_id(ALEX).get())
    assert alex is not None and alex.id == resolve_user(world, ALEX).id


def test_raw_user_matches_the_documented_example(cloud: RunningCloud, world: World) -> None:
    body = raw(cloud, app_token(world, "User.Read.All"), "GET", f"/users/{ALEX}").json()
    assert_shape(body, USER_GET_EXAMPLE)
    assert set(body) == set(USER_GET_EXAMPLE)


def test_sdk_reads_mailbox_settings(cloud: RunningCloud, world: World, run: Any) -> None:
    client = sdk(cloud, app_token(world, "MailboxSettings.Read"))
    settings = run(lambda: client.users.by_user_id(ALEX).mailbox_settings.get())
    assert settings is not None and settings.time_zone == "Pacific Standard Time"
    assert settings.working_hours is not None and settings.working_hours.start_time is not None
    assert (
        settings.working_hours.time_zone is not None
        and settings.working_hours.time_zone.name == "Pacific Standard Time"
    )
    body = raw(cloud, app_token(world, "MailboxSettings.Read"), "GET", f"/users/{ALEX}/mailboxSettings").json()
    assert_shape(body, MAILBOX_SETTINGS_EXAMPLE)


@pytest.mark.dates
def test_sdk_get_schedule_and_documented_shape(cloud: RunningCloud, world: World, run: Any) -> None:
    client = sdk(cloud, user_token(world, MEGAN, "Calendars.Read"))
    start = stack_now().replace(hour=0, minute=0, second=0, microsecond=0)
    end = start + timedelta(days=7)
    request = GetSchedulePostRequestBody(
        schedules=[ALEX, "diego.siciliani@contoso.example", "nobody@contoso.example"],
        start_time=DateTimeTimeZone(date_time=start.strftime("%Y-%m-%dT%H:%M:%S"), time_zone="UTC"),
        end_time=DateTimeTimeZone(date_time=end.strftime("%Y-%m-%dT%H:%M:%S"), time_zone="UTC"),
        availability_view_interval=60,
    )
    result = run(lambda: client.users.by_user_id(MEGAN).calendar.get_schedule.post(request))
    assert result is not None and result.value is not None and len(result.value) == 3
    alex, diego, nobody = result.value
    assert alex.availability_view is not None and len(alex.availability_view) == 7 * 24
    assert alex.schedule_items, "the fixture gives Alex a busy week"
    assert alex.working_hours is not None and alex.working_hours.days_of_week
    assert nobody.error is not None and nobody.error.response_code
    body = raw(
        cloud,
        user_token(world, MEGAN, "Calendars.Read"),
        "POST",
        f"/users/{MEGAN}/calendar/getSchedule",
        json={
            "schedules": [ALEX],
            "startTime": {"dateTime": start.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
            "endTime": {"dateTime": end.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
            "availabilityViewInterval": 60,
        },
        headers={"Prefer": 'outlook.timezone="Pacific Standard Time"'},
    ).json()
    assert_shape(body, SCHEDULE_EXAMPLE)
    detailed = [i for i in body["value"][0]["scheduleItems"] if "subject" in i]
    assert detailed, "Alex shares details with Megan"
    assert_shape(detailed[0], SCHEDULE_ITEM_WITH_DETAILS)


def test_sdk_creates_reads_patches_and_deletes_an_event(cloud: RunningCloud, world: World, run: Any) -> None:
    token = app_token(world, "Calendars.ReadWrite")
    client = sdk(cloud, token)
    prop_id = "String {66f5a359-4659-4830-9070-00047ec6ac6e} Name InterviewBookingId"
    day = (stack_now() + timedelta(days=3)).strftime("%Y-%m-%d")
    new = Event(
        subject="Interview: SDK candidate",
        body=ItemBody(content_type=BodyType.Html, content="Welcome"),
        start=DateTimeTimeZone(date_time=f"{day}T15:00:00", time_zone="Eastern Standard Time"),
        end=DateTimeTimeZone(date_time=f"{day}T16:00:00", time_zone="Eastern Standard Time"),
        location=Location(display_name="Teams"),
        attendees=[Attendee(email_address=EmailAddress(address=ALEX, name="Alex Wilber"), type=AttendeeType.Required)],
        is_online_meeting=True,
        online_meeting_provider=OnlineMeetingProviderType.TeamsForBusiness,
        transaction_id=str(uuid.uuid4()),
        single_value_extended_properties=[SingleValueLegacyExtendedProperty(id=prop_id, value="b-1")],
    )
    created = run(lambda: client.users.by_user_id(INTERVIEWS).events.post(new))
    assert created is not None and created.id and created.online_meeting and created.online_meeting.join_url
    assert (
        created.organizer and created.organizer.email_address and created.organizer.email_address.address == INTERVIEWS
    )
    again = run(lambda: client.users.by_user_id(INTERVIEWS).events.post(new))
    assert again is not None and again.id == created.id

    fetched = run(lambda: client.users.by_user_id(INTERVIEWS).events.by_event_id(created.id or "").get())
    assert fetched is not None and fetched.subject == "Interview: SDK candidate"
    patched = run(
        lambda: (
            client.users.by_user_id(INTERVIEWS)
            .events.by_event_id(created.id or "")
            .patch(Event(subject="Interview: SDK candidate (moved)"))
        )
    )
    assert (
        patched is not None
        and patched.online_meeting
        and patched.online_meeting.join_url == created.online_meeting.join_url
    )

    body = raw(
        cloud,
        token,
        "GET",
        f"/users/{INTERVIEWS}/events/{created.id}",
        params={"$expand": f"singleValueExtendedProperties($filter=id eq '{prop_id}')"},
        headers={"Prefer": 'outlook.timezone="Eastern Standard Time"'},
    ).json()
    assert_shape(body, EVENT_CREATE_EXAMPLE)
    assert body["singleValueExtendedProperties"] == [{"id": prop_id, "value": "b-1"}]

    run(lambda: client.users.by_user_id(INTERVIEWS).events.by_event_id(created.id or "").delete())
    assert raw(cloud, token, "GET", f"/users/{INTERVIEWS}/events/{created.id}").status_code == 404


@pytest.mark.dates
def test_sdk_calendar_view_and_delta(cloud: RunningCloud, world: World, run: Any) -> None:
    client = sdk(cloud, app_token(world, "Calendars.Read"))
    start = stack_now() - timedelta(days=7)
    end = stack_now() + timedelta(days=14)
    params = CalendarViewRequestBuilder.CalendarViewRequestBuilderGetQueryParameters(
        start_date_time=start.strftime("%Y-%m-%dT%H:%M:%SZ"), end_date_time=end.strftime("%Y-%m-%dT%H:%M:%SZ"), top=50
    )
    page = run(lambda: client.users.by_user_id(ALEX).calendar_view.get(RequestConfiguration(query_parameters=params)))
    assert page is not None and page.value
    kinds = {e.type.value if e.type else None for e in page.value}
    assert "occurrence" in kinds and "singleInstance" in kinds
    assert all(e.start and e.start.time_zone == "UTC" for e in page.value)
    # delta through raw HTTP: the SDK's delta builder needs the same start/end and returns the same pages
    token = app_token(world, "Calendars.Read")
    url: str | None = (
        f"/users/{ALEX}/calendarView/delta?startDateTime={start.strftime('%Y-%m-%dT%H:%M:%SZ')}"
        f"&endDateTime={end.strftime('%Y-%m-%dT%H:%M:%SZ')}"
    )
    seen = 0
    while url:
        body = raw(cloud, token, "GET", url.replace(cloud.graph_url, "")).json()
        seen += len(body["value"])
        url = body.get("@odata.nextLink")
        if "@odata.deltaLink" in body:
            assert "$deltatoken=" in body["@odata.deltaLink"]
    assert seen == len(page.value)
