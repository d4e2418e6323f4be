"""Fictional data for every printed document kind: the tests' fixtures and what
scripts/render-samples.py draws for the README. Every name, number and address is made up."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from datetime import date, datetime
from pathlib import Path
from typing import Any

from PIL import Image

TRACKING_NUMBER = "ZZ530102-20261122-000457"
# A street long enough to wrap on both papers.
LONG_ADDRESS = ("测试省测试市测试区人民中路一百二十八号测试大厦东侧裙楼二层"
                "政务服务中心二十四小时自助服务区（地铁三号线测试站B出口步行五百米）")


def _materials(count: int) -> list[dict[str, Any]]:
    base = [
        {"name": "居民身份证", "form": "原件", "copies": 1, "requirement": "required"},
        {"name": "居民户口簿", "form": "原件", "copies": 1, "requirement": "required"},
        {"name": "近期二寸免冠彩色照片", "form": "原件", "copies": 2, "requirement": "required",
         "note": "（白底，近三个月内拍摄）"},
        {"name": "原社会保障卡", "form": "原件", "copies": 1, "requirement": "later",
         "note": "（损坏换领时提供）"},
        {"name": "委托书及受托人身份证", "form": "复印件", "copies": 1,
         "requirement": "optional", "note": "（委托办理时提供）"},
    ]
    extra = [{"name": f"第{n}项补充证明材料（测试用长清单）", "form": "复印件", "copies": 1,
              "requirement": ("required", "optional", "later")[n % 3]}
             for n in range(len(base) + 1, count + 1)]
    return (base + extra)[:count]


def samples(materials: int = 5) -> dict[str, dict[str, Any]]:
    """One data set per template, fresh each call (tests change them)."""
    return {
        "queue_ticket": {
            "centre_name": "测试市测试区政务服务中心",
            "number": "A017",
            "service_name": "社会保障卡补办",
            "place": "二楼 B区 5号窗口",
            "waiting_ahead": 3,
            "issued_at": datetime(2026, 11, 22, 9, 5),
            "appointment": True,
        },
        "application_receipt": {
            "centre_name": "测试市测试区政务服务中心",
            "tracking_number": TRACKING_NUMBER,
            "local_tracking_number": "K20261122-0017",
            "item_name": "社会保障卡补领、换领",
            "item_code": "11530102MB0000000X4530102001",
            "applicant_name": "王小测",
            "applicant_id": "990102199001011234",
            "submitted_at": datetime(2026, 11, 22, 9, 41),
            "department": "测试区人力资源和社会保障局",
            "time_limit": "10个工作日",
            "expected_date": date(2026, 12, 4),
            "materials_received": [{"name": "居民身份证", "copies": 1},
                                   {"name": "近期二寸免冠彩色照片", "copies": 2}],
            "materials_missing": [{"name": "原社会保障卡", "deadline": date(2026, 11, 29)}],
            "tracking_url": f"https://zwfw.example.invalid/track/{TRACKING_NUMBER}",
            "phone": "0000-12345678",
            "kiosk_id": "ZZ-TEST-01",
        },
        "test_page": {
            "centre_name": "测试市测试区政务服务中心",
            "kiosk_id": "ZZ-TEST-01",
            "device": "receipt_printer",
            "driver": "cups",
            "version": "0.1.0",
            "printed_at": datetime(2026, 11, 22, 9, 5, 30),
            "check": "K7M2",
        },
        "one_time_notice": {
            "centre_name": "测试市测试区政务服务中心",
            "item_name": "社会保障卡补领、换领",
            "item_code": "11530102MB0000000X4530102001",
            "item_type": "公共服务",
            "department": "测试区人力资源和社会保障局",
            "legal_basis": ["《中华人民共和国社会保险法》第五十八条",
                            "《社会保障卡管理办法（测试版）》第十二条、第十五条"],
            "conditions": ["参加本市社会保险并已领取社会保障卡的人员",
                           "社会保障卡遗失、损坏或信息变更需要补领、换领的"],
            "materials": _materials(materials),
            "legal_time_limit": "20个工作日",
            "promised_time_limit": "10个工作日（即时制卡点当场办结）",
            "fees": "不收费",
            "address": LONG_ADDRESS,
            "hours": "周一至周五 9:00-12:00，13:30-17:00；自助服务区24小时开放",
            "phone": "0000-12345678",
            "online_url": "https://zwfw.example.invalid/guide/4530102001",
            "printed_at": datetime(2026, 11, 22, 10, 3),
        },
        "progress_query": {
            "centre_name": "测试市测试区政务服务中心",
            "tracking_number": TRACKING_NUMBER,
            "item_name": "社会保障卡补领、换领",
            "applicant_name": "王小测",
            "status": "审批中",
            "expected_date": date(2026, 12, 4),
            "pickup": "办结后到自助服务区自助出件",
            "history": [
                {"time": datetime(2026, 11, 22, 9, 41), "step": "自助申报",
                 "department": "自助终端 ZZ-TEST-01"},
                {"time": datetime(2026, 11, 22, 14, 10), "step": "综合窗口受理",
                 "department": "测试区政务服务中心综合窗口"},
                {"time": datetime(2026, 11, 23, 10, 25), "step": "部门审批",
                 "department": "测试区人力资源和社会保障局"},
            ],
            "queried_at": datetime(2026, 11, 24, 8, 30),
        },
        "certificate": {
            "certificate_name": "户籍证明",
            "certificate_number": "HJ-2026-1122-00088",
            "addressee": "测试单位：",
            "body": [
                "兹证明王小测，性别女，公民身份号码990102199001011234，户籍地址为" + LONG_ADDRESS
                + "，系本辖区常住户口。",
                "该居民户籍信息以公安机关户籍管理系统记录为准。本证明仅用于办理社会保障相关业务，"
                "有效期三个月。",
                "特此证明。",
            ],
            "notes": ["本证明不得涂改，涂改无效。"],
            "issuer": "测试市公安局测试区分局户政科",
            "issued_on": date(2026, 11, 22),
            "verify_url": "https://zwfw.example.invalid/verify/HJ-2026-1122-00088?c=7Q4K2M",
            "verify_code": "7Q4K2M",
        },
    }


def decode_qr(image: Image.Image) -> list[str] | None:
    """The payloads of the QR codes in ``image``, or None when no decoder is installed here
    (zxing-cpp in the venv, else zbarimg from zbar-tools)."""
    try:
        import zxingcpp
    except ImportError:
        zxingcpp = None
    if zxingcpp is not None:
        return [r.text for r in zxingcpp.read_barcodes(image.convert("L"))
                if r.format == zxingcpp.BarcodeFormat.QRCode]
    if shutil.which("zbarimg") is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "qr.png"
        image.convert("L").save(path)
        done = subprocess.run(["zbarimg", "--raw", "-q", "-Sdisable", "-Sqrcode.enable",
                               str(path)], capture_output=True, text=True, timeout=30)
    return [line for line in done.stdout.splitlines() if line]
