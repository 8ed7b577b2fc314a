"""bridge/erp/fault.py: a SOAP Fault is recognised by parsing the answer, not by spotting a word."""

from __future__ import annotations

from bridge.erp.fault import FAULT_SNIFF_BYTES, find_fault

SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"


def test_soap11_fault_gives_code_and_string_when_any_prefix_is_used():
    body = (f'<?xml version="1.0"?><S:Envelope xmlns:S="{SOAP11}"><S:Body><S:Fault>'
            "<faultcode>S:Client</faultcode><faultstring> Неверный номер </faultstring>"
            "</S:Fault></S:Body></S:Envelope>").encode("utf-8")
    fault = find_fault(body)
    assert (fault.code, fault.text) == ("S:Client", "Неверный номер")


def test_soap12_fault_gives_reason_text_when_there_is_no_faultstring():
    body = (f'<env:Envelope xmlns:env="{SOAP12}"><env:Body><env:Fault><env:Code><env:Value>env:Receiver'
            '</env:Value></env:Code><env:Reason><env:Text xml:lang="ru">база занята</env:Text></env:Reason>'
            "</env:Fault></env:Body></env:Envelope>").encode("utf-8")
    fault = find_fault(body)
    assert (fault.code, fault.text) == ("", "база занята")


def test_no_fault_when_the_word_fault_is_only_text_or_outside_the_body():
    assert find_fault(f'<e:Envelope xmlns:e="{SOAP11}"><e:Body><r>&lt;Fault&gt; Fault</r></e:Body>'
                      "</e:Envelope>".encode()) is None
    assert find_fault(b"<html><body><Fault>oops</Fault></body></html>") is None
    assert find_fault(b"Internal Server Error") is None
    assert find_fault(b"") is None


def test_fault_is_found_when_a_huge_answer_is_cut_at_the_sniff_limit():
    body = (f'<e:Envelope xmlns:e="{SOAP11}"><e:Body><e:Fault><faultcode>e:Server</faultcode>'
            f"<faultstring>busy</faultstring><detail>{'x' * FAULT_SNIFF_BYTES}</detail></e:Fault>"
            "</e:Body></e:Envelope>").encode()
    fault = find_fault(body)
    assert (fault.code, fault.text) == ("e:Server", "busy")


def test_no_entity_is_expanded_when_the_answer_declares_one():
    body = (f'<!DOCTYPE e [<!ENTITY x SYSTEM "file:///etc/passwd">]><e:Envelope xmlns:e="{SOAP11}">'
            "<e:Body><e:Fault><faultcode>e:Server</faultcode><faultstring>&x;</faultstring>"
            "</e:Fault></e:Body></e:Envelope>").encode()
    fault = find_fault(body)
    assert fault is not None and "root:" not in fault.text


def test_fault_in_utf16_is_found_although_its_bytes_do_not_spell_fault():
    text = (f'<?xml version="1.0" encoding="UTF-16"?><e:Envelope xmlns:e="{SOAP11}"><e:Body><e:Fault>'
            "<faultcode>e:Client</faultcode><faultstring>нет такого звонка</faultstring></e:Fault>"
            "</e:Body></e:Envelope>")
    fault = find_fault(text.encode("utf-16"))
    assert (fault.code, fault.text) == ("e:Client", "нет такого звонка")


def test_fault_is_found_from_several_threads_at_once():
    from concurrent.futures import ThreadPoolExecutor

    body = (f'<e:Envelope xmlns:e="{SOAP11}"><e:Body><e:Fault><faultcode>e:Server</faultcode>'
            "<faultstring>busy</faultstring></e:Fault></e:Body></e:Envelope>").encode()
    ok = f'<e:Envelope xmlns:e="{SOAP11}"><e:Body><PushEventResponse/></e:Body></e:Envelope>'.encode()
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(find_fault, [body, ok] * 200))
    assert [r.text if r else None for r in results] == ["busy", None] * 200
