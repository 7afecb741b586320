"""The parent context read from LightStep, B3 and W3C headers."""

from __future__ import annotations

from werkzeug.datastructures import EnvironHeaders, Headers

from app.tracing.propagation import extract


def test_lightstep_headers_give_parent_sampling_and_baggage():
    incoming = extract(
        Headers(
            {
                "Ot-Tracer-Traceid": "00000000000000a1",
                "Ot-Tracer-Spanid": "b2",
                "Ot-Tracer-Sampled": "true",
                "Ot-Baggage-Tenant": "acme",
            }
        )
    )

    assert incoming.context.trace_id == 0xA1
    assert incoming.context.span_id == 0xB2
    assert incoming.context.sampled is True
    assert incoming.context.baggage == {"tenant": "acme"}
    assert incoming.tags == {"trace.incoming_format": "lightstep"}


def test_lightstep_unsampled_flag_is_kept():
    incoming = extract(
        {
            "ot-tracer-traceid": "1",
            "ot-tracer-spanid": "2",
            "ot-tracer-sampled": "false",
        }
    )

    assert incoming.context.sampled is False


def test_b3_128_bit_trace_id_keeps_low_64_bits_and_records_the_full_id():
    incoming = extract(
        {
            "x-b3-traceid": "463ac35c9f6413ad48485a3953bb6124",
            "x-b3-spanid": "a2fb4a1d1a96d312",
            "x-b3-sampled": "1",
        }
    )

    assert incoming.context.trace_id == 0x48485A3953BB6124
    assert incoming.context.span_id == 0xA2FB4A1D1A96D312
    assert incoming.context.sampled is True
    assert incoming.tags == {
        "trace.incoming_format": "b3",
        "trace.incoming_id": "463ac35c9f6413ad48485a3953bb6124",
    }


def test_b3_single_header_with_deny_flag():
    incoming = extract({"b3": "80f198ee56343ba8-e457b5a2e4d86bd1-0"})

    assert incoming.context.trace_id == 0x80F198EE56343BA8
    assert incoming.context.span_id == 0xE457B5A2E4D86BD1
    assert incoming.context.sampled is False
    assert incoming.tags == {"trace.incoming_format": "b3"}


def test_w3c_traceparent_gives_parent_and_sampled_bit():
    incoming = extract(
        {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    )

    assert incoming.context.trace_id == 0x8448EB211C80319C
    assert incoming.context.span_id == 0xB7AD6B7169203331
    assert incoming.context.sampled is True
    assert incoming.tags["trace.incoming_id"] == "0af7651916cd43dd8448eb211c80319c"


def test_lightstep_headers_win_over_traceparent():
    incoming = extract(
        {
            "ot-tracer-traceid": "aa",
            "ot-tracer-spanid": "bb",
            "ot-tracer-sampled": "true",
            "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        }
    )

    assert incoming.context.trace_id == 0xAA
    assert incoming.tags == {"trace.incoming_format": "lightstep"}


def test_broken_lightstep_headers_fall_back_to_traceparent_and_say_why():
    incoming = extract(
        {
            "ot-tracer-traceid": "not-hex",
            "ot-tracer-spanid": "bb",
            "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00",
        }
    )

    assert incoming.context.trace_id == 0x8448EB211C80319C
    assert incoming.context.sampled is False
    assert incoming.tags["trace.context_error"] == (
        "ot-tracer-traceid must be 1 to 32 hex digits"
    )


def test_unusable_headers_start_a_new_trace_with_the_reason():
    incoming = extract({"traceparent": "00-00000000000000000000000000000000-01-01"})

    assert incoming.context is None
    assert incoming.tags == {
        "trace.context_error": "traceparent must be version-traceid-parentid-flags"
    }


def test_zero_ids_are_refused():
    incoming = extract({"ot-tracer-traceid": "0", "ot-tracer-spanid": "1"})

    assert incoming.context is None
    assert incoming.tags == {
        "trace.context_error": "ot-tracer-traceid must not be zero"
    }


def test_no_trace_headers_means_no_parent():
    incoming = extract({"content-type": "application/json"})

    assert incoming.context is None
    assert incoming.tags == {}


def test_baggage_from_a_wsgi_request_is_named_like_the_header():
    headers = EnvironHeaders(
        {
            "HTTP_OT_TRACER_TRACEID": "5a1e0f00ba5eba11",
            "HTTP_OT_TRACER_SPANID": "c0ffe",
            "HTTP_OT_BAGGAGE_TENANT_ID": "acme",
            "HTTP_OT_BAGGAGE_": "nameless",
            "HTTP_X_OTHER": "x",
        }
    )

    incoming = extract(headers)

    assert incoming.context.baggage == {"tenant-id": "acme"}
