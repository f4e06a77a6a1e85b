"""Query-side vocabulary bridge: everyday Chinese and English words mapped to the
words the plan documents use (火箭 -> 航天/发射, wind power -> 风电).

The dense model half-knows these pairs; BM25 knows none of them. Expanding the
question's lexical tokens with the documents' own terms lets a reader ask in their
own words. Entries are domain vocabulary of county-economy plans, not answers:
keep them general (a word and its plan-speak equivalents), never question-shaped.
"""
from __future__ import annotations

import re

# everyday Chinese -> plan vocabulary
ZH: dict[str, tuple[str, ...]] = {
    "火箭": ("航天", "发射", "星箭"),
    "卫星": ("航天", "星箭", "空间信息"),
    "太空": ("航天", "空间"),
    "宇航": ("航天",),
    "海面": ("海上",),
    "风力": ("风电",),
    "风能": ("风电",),
    "风机": ("风电装备",),
    "核能": ("原子能",),
    "核电": ("原子能",),
    "核技术": ("原子能",),
    "老城": ("城市更新", "片区开发"),
    "旧城": ("城市更新", "片区开发"),
    "老城区": ("城市更新", "中心城区"),
    "旧改": ("城市更新",),
    "改造": ("更新", "修缮"),
    "切入点": ("突破口",),
    "抓手": ("突破口",),
    "重点": ("突破口", "重中之重"),
    "进口": ("进境",),
    "入境": ("进境",),
    "冷鲜": ("冰鲜",),
    "冷冻": ("冰鲜",),
    "海产": ("水产品",),
    "海鲜": ("水产品", "海珍品"),
    "活鱼": ("水生动物",),
    "活虾": ("水生动物",),
    "海关": ("监管", "通关"),
    "查验": ("监管",),
    "检疫": ("监管",),
    "药": ("医药", "制药", "生物医药"),
    "制药": ("医药",),
    "医疗": ("医药", "医疗器械"),
    "芯片": ("半导体",),
    "电子产品": ("消费电子",),
    "汽车": ("汽车制造", "汽车及零部件"),
    "化工": ("高端化工",),
    "铝": ("铝材料",),
    "天然气": ("LNG",),
    "旅游": ("文旅", "生态旅游"),
    "环保": ("生态保护",),
    "生态环境": ("生态保护", "生态"),
    "野生动物": ("濒危", "江豚", "斑海豹"),
    "鸟": ("鸟类",),
    "作者": ("记者",),
    "撰写": ("记者",),
    "目标": ("力争", "目标"),
    "gdp": ("地区生产总值",),
    "财政收入": ("一般公共预算收入",),
    "税收": ("一般公共预算收入",),
    "会议": ("大会",),
    "开会": ("大会", "召开"),
    "发布": ("印发",),
    "出台": ("印发",),
    "工业园": ("园区", "工业园"),
    "产业园": ("产业园", "园区"),
    "研究院": ("研究所", "研究院"),
    "外贸": ("外贸外资",),
    "港口": ("港口吞吐量", "港"),
    "电商": ("跨境电商",),
    "乡村": ("乡村全面振兴",),
    "农村": ("乡村",),
    "风险": ("防范化解重大风险",),
}

# English -> plan vocabulary (matched as whole words, lower case)
EN: dict[str, tuple[str, ...]] = {
    "space": ("航天",), "aerospace": ("航天",), "rocket": ("航天", "发射", "星箭"),
    "rockets": ("航天", "发射", "星箭"), "satellite": ("航天", "星箭"), "launch": ("发射",),
    "launches": ("发射",), "spaceport": ("航天港",), "port": ("港",), "sea": ("海上",),
    "offshore": ("海上",), "commercial": ("商业",),
    "wind": ("风电",), "turbine": ("风电装备",), "turbines": ("风电装备",),
    "nuclear": ("原子能",), "atomic": ("原子能",),
    "biomedicine": ("生物医药",), "biomedical": ("生物医药",), "pharmaceutical": ("医药", "制药"),
    "pharma": ("医药",), "medicine": ("医药",), "drug": ("药",), "drugs": ("药",),
    "health": ("健康",), "vaccine": ("疫苗",), "semiconductor": ("半导体",), "chip": ("半导体",),
    "chips": ("半导体",), "electronics": ("电子",), "automobile": ("汽车",), "car": ("汽车",),
    "cars": ("汽车",), "chemical": ("化工",), "chemicals": ("化工",), "aluminium": ("铝材料",),
    "aluminum": ("铝材料",), "apple": ("苹果",), "apples": ("苹果",), "tourism": ("文旅", "旅游"),
    "ecology": ("生态",), "ecological": ("生态",), "environment": ("生态",),
    "conservation": ("生态保护",), "restoration": ("修复",), "nature": ("自然",),
    "reserve": ("保护区",), "museum": ("博物馆",), "forest": ("森林",),
    "urban": ("城市",), "renewal": ("更新",), "regeneration": ("城市更新",),
    "industry": ("产业",), "industries": ("产业",), "industrial": ("产业", "工业"),
    "leading": ("主导",), "pillar": ("主导",), "chain": ("产业链",), "chains": ("产业链",),
    "park": ("园区",), "parks": ("园区",), "zone": ("区",),
    "county": ("县域",), "counties": ("县域",), "economy": ("经济",), "economic": ("经济",),
    "plan": ("方案",), "action": ("行动",), "three-year": ("三年",), "revitalise": ("振兴",),
    "revitalize": ("振兴",), "revitalization": ("振兴",), "revitalisation": ("振兴",),
    "conference": ("大会",), "meeting": ("大会",), "held": ("召开",), "convened": ("召开",),
    "issued": ("印发",), "published": ("印发",), "high-quality": ("高质量发展",),
    "quality": ("高质量",), "development": ("发展",), "goal": ("力争",), "goals": ("力争",),
    "target": ("力争",), "targets": ("力争",), "gdp": ("地区生产总值",),
    "revenue": ("一般公共预算收入",), "billion": ("亿元",), "yuan": ("元",),
    "reporter": ("记者",), "reporters": ("记者",), "author": ("记者",), "authors": ("记者",),
    "wrote": ("记者",), "secretary": ("书记",), "party": ("区委",),
    "breakthrough": ("突破口",), "customs": ("监管", "通关"), "import": ("进境",),
    "imported": ("进境",), "seafood": ("水产品",), "aquatic": ("水生动物",), "meat": ("肉类",),
    "trade": ("外贸",), "e-commerce": ("跨境电商",), "ecommerce": ("跨境电商",),
    "logistics": ("物流",), "marine": ("海洋",), "ocean": ("海洋",), "innovation": ("创新",),
    "research": ("研究", "科研"), "science": ("科学", "科普"), "laboratory": ("实验室",),
    "rural": ("乡村",), "village": ("乡村",), "livelihood": ("民生",), "risk": ("风险",),
    "risks": ("风险",), "investment": ("招商", "外资"), "investors": ("招商",),
}

_EN_WORD = re.compile(r"[a-z][a-z\-]*")


def bridge(question: str) -> list[str]:
    """Plan-vocabulary terms the question means but may not use; none already in it."""
    low = question.lower()
    out: list[str] = []
    for word, terms in ZH.items():
        if word in low:
            out.extend(t for t in terms if t not in low and t not in out)
    for word in _EN_WORD.findall(low):
        for t in EN.get(word, ()):
            if t not in out:
                out.append(t)
    return out
