"""Word lists for the local name detector in ``gateway.safety.pii`` (no model, no download, no cloud).

* ``FIRST_NAMES``: common given names across cultures (lower case). A capitalised sequence that starts
  with one of these is a name candidate; on its own such a name counts unless it is in ``AMBIGUOUS``.
* ``AMBIGUOUS``: the given names that are also ordinary words, months or places ("Will", "May", "Grace",
  "Sydney"): alone they count only after a cue ("my name is", "Hi", "Mr"…) or before "here"/"speaking".
* ``NOT_NAME``: words that end or reject a name (function words, days, months, street types, banking
  products, greetings): "Thank You", "Visa Gold", "London Branch" stay.
* ``SURNAME_FIRST``: frequent family names of cultures that say them first ("Nguyen Van An", "Wang Wei"):
  a capitalised sequence starting with one counts when a known given name follows.
* ``CITIES``: towns that may end a lower-case transcript address without a comma ("42 baker street london").
* ``COMMON``: ordinary lower-case words: a lower-case transcript name after a cue ("my name is john smith
  and…") stops at the first of them.

Compiled by hand from public lists of popular given names; deliberately compact (a few thousand names)
so that loading costs nothing. Names not listed are still found after cues and titles.
"""

from __future__ import annotations


def _words(block: str) -> frozenset[str]:
    return frozenset(block.lower().split())


FIRST_NAMES = _words("""
aaron abigail abraham ada adam adele adrian alex adriana agnes aidan aileen alan alana albert alberta alec alexa
alexander alexandra alexis alfie alfred alice alicia alison alistair allan allison alma amanda amber amelia amy
andrea andrew andy angela angelica angelina angus anita ann anna annabel annabelle anne annette annie anthony
antonia april archie arnold arthur ashley aubrey audrey austin ava barbara barry beatrice becky belinda ben
benjamin bernadette bernard beth bethany betty beverley bill billy blake bob bonnie brad bradley brandon brenda
brendan brian bridget brittany brooke bruce bryan caitlin callum calvin cameron camilla candice carl carla
carol caroline carolyn carrie casey catherine cathy cecilia cecil charles charlie charlotte chelsea cheryl
chester chloe chris christian christina christine christopher cindy claire clara clarence clare claudia clive
colin connie connor conor craig crystal curtis cynthia daisy dale damian damien dan dana daniel daniela danielle
danny darren darryl dave david dawn dean debbie deborah declan denise dennis derek diana diane dominic don
donald donna doris dorothy douglas duncan dylan eddie edgar edith edmund edward edwin eileen elaine eleanor
elijah elizabeth ella ellen ellie eloise elsie emily emma eric erica erin ernest esther ethan eugene eva evan
evelyn faith felicity felix fiona florence frances francis frank freddie frederick freya gabriel gail gareth
gary gavin gemma geoffrey george georgia georgina gerald geraldine gillian gladys glen glenn gloria gordon grace
graham grant gregory gwen gwendolyn hailey hannah harold harriet harrison harry harvey hayley hazel heather
helen henry herbert holly howard hugh hugo ian imogen irene iris isaac isabel isabella isabelle isla ivan ivy
jack jackie jacob jacqueline jade jake james jamie jane janet janice jared jasmine jason jay jean jeanette
jeff jeffrey jenna jennifer jenny jeremy jerome jerry jessica jill jim jimmy jo joan joanna joanne jodie joe
joel john johnny jon jonathan jordan joseph josephine josh joshua joy joyce judith judy julia julian julie
june justin karen kate katherine kathleen kathryn katie katy kay keith kelly ken kenneth kerry kevin kim
kimberly kirsty kyle lana laura lauren lawrence leah lee leo leon leonard leslie lewis liam lily linda
lindsay lisa lois lorraine louis louisa louise lucas lucy luke lydia lynn mabel madeleine madison maisie
malcolm mandy marcus margaret maria marian marie marilyn marion mark marsha martha martin martyn mary
matilda matt matthew maureen max maxine megan melanie melissa mia michael michaela michelle mike mildred
millie miranda mitchell molly monica morgan muriel nancy naomi natalie natasha nathan neil nicholas nick
nicola nicole nigel noah nora norman olive oliver olivia oscar owen paige pam pamela patricia patrick paul
paula pauline pearl peggy penelope penny pete peter phil philip phillip phoebe phyllis poppy rachel ralph
randy ray raymond rebecca regina reginald rhys richard rick ricky rita rob robert roberta robin rodney roger
ronald ronnie rory rosa rosalind rose rosemary ross roy ruby russell ruth ryan sabrina sally sam samantha
samuel sandra sara sarah scarlett scott sean seth shane shannon sharon shaun sheila shirley sidney simon
sophia sophie stacey stanley stella stephanie stephen steve steven stewart stuart sue susan suzanne sydney
sylvia tammy tanya tara ted teresa terence terry theo theodore thomas tiffany tim timothy tina toby todd tom
tommy tony tracey tracy trevor troy tyler valerie vanessa vera veronica vicky victor victoria vincent violet
virginia vivian walter wanda warren wayne wendy wesley will william willow winifred yvonne zachary zack zoe
zara abbie addison alexia alyssa amara arabella aria aurora autumn bella brianna brooklyn cora delilah eden
elena eliza elsa emilia esme evie everly freddy gianna hallie harper hattie hudson hunter iris jaxon jayden
jenson kai kayla layla leila lexi luca luna maddison mason maya mila nevaeh nova orla penelope piper quinn
reggie riley rosie rowan sadie savannah seb sebastian sienna skye stanley summer teddy tilly violet wren
wyatt xavier zain zayn pat guy miles noel gene sandy may hope
aengus aileen aisling aoife bronagh caoimhe ciara ciaran cillian clodagh colm cormac darragh deirdre donal
dermot eamon eamonn eimear eoin fergal fergus fionn fionnuala grainne niamh niall oisin padraig roisin
ronan saoirse seamus sinead siobhan sorcha tadhg una aled bethan bryn cerys dafydd dai dylan eira elin
emrys ffion gethin glyn gwyn huw idris iestyn ifan iwan llinos lowri meinir mererid nia owain rhian rhodri
seren sian sion tegan aileas ailsa alasdair catriona eilidh ewan fraser hamish iain isla kirsteen morag
mhairi murdo rab seonaid struan
aaliyah abdul abdullah abdulrahman abeer adel adnan ahmad ahmed aisha ali alia amal amin amina amir amira
amr anas asma ayman aziz basma bilal dalia fadi farah farid farida fatima fatma fawzia faisal ghada habib
hadi hafsa hala hamid hamza hana hani hasan hassan hiba hind hisham hossam hussein ibrahim imad iman
ismail jamal jamila kareem karim khadija khaled khalid laila layla leila lina mahmoud majid malak mariam
marwa maryam mohamed mohammad mohammed mona mostafa mounir mustafa nabil nadia nadine naji nasser nawal
nour noura omar osama rami rana rania rashid reem rima saad saeed said salah salim salma sami samir samira
sana sara selim shadi sherif siham sultan tarek tariq wael walid yasmin yasmine yara yousef youssef yusuf
zainab zaid zakaria zeinab ziad
abbas afshin ali ardeshir arash ario armin azadeh babak bahar behnam behrouz bijan dariush darius farhad
farnaz farzaneh golnar hamed hossein kamran kaveh kian kourosh leyla mahnaz mahsa mehdi mehran mina mitra
mojgan morteza nasrin navid neda niloufar omid parisa parvin payam pegah reza roya saman sepideh shirin
shahram shahla siavash soheil soraya taraneh yasaman
aarav aarti abhay abhishek aditi aditya ajay akash akshay alok amit amitabh anand ananya anil anita anjali
ankit ankita anup anuradha anurag arjun arun aruna arvind asha ashish ashok atul avinash ayesha bhavna
chandra chetan deepa deepak deepika dev devendra dhruv dinesh divya gaurav geeta girish gita gopal govind
harish harsh hema hemant indira isha ishaan jaya jayesh jyoti kabir kajal kalpana kamal kamala karan
kavita kavya kiran krishna kumar lakshmi lalita madhu mahesh manish manisha manoj meena meera mohan monika
mukesh nandini naresh naveen neelam neha nikhil nikita nisha nitin pallavi pankaj parvati pooja prabhu
pradeep prakash pranav prashant praveen preeti prem priya priyanka puja radha rahul raj raja rajesh rajiv
rakesh ram ramesh rani ravi rekha rishi ritu rohan rohit sachin sagar sahil sameer sandeep sanjay sanjeev
santosh sarita saroj satish seema shalini shankar sharmila shilpa shiv shreya shruti shyam siddharth smita
sneha sonal sonia srinivas suman sumit sunil sunita suresh sushila swati tanvi tarun uma usha varun vijay
vikas vikram vinay vinod vipin vishal vivek yash yogesh
arjun balaji ganesh gowri jayanthi karthik kannan lakshman murali muthu nithya padma prasad raghu
raghunathan rajendra ramya saravanan selvi senthil shanthi sivakumar subramanian sundar thilak vasanthi
venkat venkatesh vignesh
amandeep arjan baljit balwinder gurpreet gurinder harjit harpreet harvinder jaspreet jasvinder jaswinder
kulwinder manpreet navjot paramjit rajinder ranjit simran sukhwinder tejinder
abid adeel afzal amjad anwar arif asif ashfaq ayesha azhar faisal farhan fawad ghulam hina humaira iqbal
irfan javed junaid kashif kamran mehwish naeem naveed nazia rizwan sadia saima sajid shahid shazia
shoaib sobia tahir tanveer umar usman waqar waseem zahid zubair
anik arnab debashis dipankar indrani joydeep moumita partha rupa sourav subhash sudipta tanmoy
ai akira akiko aiko asuka ayaka chiyo daichi daiki emi eri haruka haruto hana hikari hiroshi hiroko hiro
hitomi ichiro kaito kaori kazuki kazuo kenji kenta kei keiko ken koji kumiko mai makoto mami mari mariko
masaki masako masato mayumi megumi michiko midori minoru misaki miyu naoki naoko natsuki nobu noriko ren
riku rin ryo ryota sakura satoshi sayaka shigeru shin shinji shota sora takashi takeshi takumi taro
tomoko tsubasa yoko yoshi yoshiko yuki yuko yumi yuna yusuke yuta yuto
an anh bao binh chau chi cuong dung duc giang hai hanh hien hieu hoa hoang hung huong huy khanh khoa lan
linh long mai minh my nam ngoc nhung phuong quang quynh tam thanh thao thu thuy tien trang trinh trung
tuan tung van viet vy xuan yen
bo chen chun dan fang fei feng gang guang hao hong hua hui jian jiang jie jin jing jun lei li lian liang
lin ling lu mei min ming na ning ping qiang qing rong rui shan sheng shu tao ting wei wen xia xiang xiao
xin xiu yan yang yi ying yong yu yuan yun zhen zhi zhong
bora chae-won dae-jung do-yun eun-ji ha-eun hye-jin hyun-woo ji-hoon ji-woo ji-yeon jin-woo ju-won
jun-ho min-jun min-seo seo-yeon seo-yun soo-jin su-bin sung-min woo-jin ye-jin yeon-woo young-ho
jiho jimin jisoo jiwoo minho minji seojun seoyeon soojin sunghoon yuna hyejin hyunwoo jaehyun
adriano agustin alejandra alejandro alfonso alicia alonso alvaro amparo ana andres angel antonio araceli
armando arturo beatriz benito blanca camila carlos carmen carolina catalina cesar claudia concepcion
consuelo cristian cristina daniela diego dolores eduardo elena elisa emilio enrique ernesto esperanza
esteban eugenia fabiola federico felipe fernanda fernando francisca francisco gabriela gerardo gilberto
gloria gonzalo graciela guadalupe guillermo gustavo hector hugo ignacio ines isabel jaime javier jesus
jimena joaquin jorge jose josefina juan juana julio leonardo leticia lorena lourdes lucia luis luisa
manuel manuela marcela marco marcos margarita maria mariana marina mario marisol marta martin mateo
mercedes miguel monica nicolas norma octavio pablo paloma patricia pedro pilar rafael ramiro ramon raquel
raul renata ricardo roberto rocio rodrigo rogelio rolando rosa rosario ruben salvador santiago sebastian
sergio silvia sofia soledad susana teresa tomas valentina valeria veronica vicente victoria ximena yolanda
adriana afonso alessandra antonia beatriz bruna caio camila diogo duarte fabio gabriela goncalo henrique
joao leandro leticia luana marcelo mariana matheus miguel paulo rafaela renato rodrigo thiago vitor
vitoria
adele adrien agathe aime alain alexandre amelie andre anne antoine arnaud aurelie axel baptiste bastien
benedicte benoit bernadette brigitte camille celine chantal charlotte chloe christelle christophe claude
clement colette corinne damien delphine denis didier dominique edouard eloise emile emilie emmanuel
estelle etienne fabien fabrice florian francois francoise frederic gaelle gaspard genevieve gerard
gilles guillaume helene herve hugues isabelle jacques jean-claude jean-luc jean-marc jean-paul
jean-pierre jeanne jerome josette julien juliette laetitia laurent lea leon lionel louise luc lucie
madeleine manon marcel margaux marguerite marianne marion martine mathieu mathilde maxime melanie
michel mireille monique nathalie nicolas noemie odette olivier pascal pascale patrice philippe pierre
raphael remi renee romain sandrine sebastien severine simone solange stephane sylvain sylvie theo
thierry valerie veronique vincent virginie yann yves yvette zoe
andreas anja anke annika axel barbel bernd birgit bjorn christa christoph claudia dagmar detlef dieter
dirk elke erika ernst franz friedrich fritz gabriele gerd gerhard gisela gunter gunther hannelore hans
hans-peter heike heinrich heinz helga helmut herbert hildegard horst ilse ingrid irmgard jan jana jens
joachim johann johannes jorg jurgen kai karin karl karl-heinz katharina katrin klaus knut konrad kurt
lars lena lothar ludwig lukas lutz manfred mareike marianne markus matthias maximilian melanie monika
niklas norbert otto petra rainer ralf reinhard renate rolf rudolf sabine sandra silke stefan stefanie
susanne sven tobias torsten udo ulla ulrich ulrike ursula uwe volker waltraud werner wilhelm wolfgang
adriano alberto alessandra alessandro alessia alfredo angela angelo anna antonella antonio arianna
aurelio beatrice bianca bruno carla carlo carmela caterina cesare chiara claudio corrado cristiano
daniele davide donatella elena elisabetta emanuele enrico enzo ettore fabio fabrizio federica filippo
francesca franco gabriele giacomo gianluca gianni giorgia giorgio giovanna giovanni giulia giulio
giuseppe giuseppina gloria graziella guido ilaria leonardo lorenzo luca lucia luciano luigi marcello
marco margherita mario marta massimo matteo maurizio michela michele nicola paola paolo pietro raffaele
renato riccardo rita roberta roberto rosa rosaria salvatore sergio silvana silvia simona simone stefano
teresa tiziana tommaso valentina valerio vincenzo vittoria vittorio
aart anouk bart bas bram daan dirk-jan eelco femke floor floris geert gert hendrik henk jaap jan-willem
jeroen joost joris kees koen lieke lotte luuk maarten marieke mees niels pieter ruud sanne sander
sjoerd stijn thijs tijn wouter
agnieszka aleksander aleksandra alicja andrzej anna barbara bartosz beata bozena dariusz dorota elzbieta
ewa grazyna grzegorz halina hanna irena jacek jadwiga jakub jan janina janusz jaroslaw jerzy joanna jolanta
jozef julia justyna kamil karolina katarzyna krystyna krzysztof leszek lukasz łukasz maciej magdalena
malgorzata małgorzata marcin marek maria mariusz marta michal michał monika natalia pawel paweł piotr
rafal rafał robert roman ryszard slawomir sławomir stanislaw stanisław stefan szymon tadeusz teresa tomasz
urszula wanda wiktoria witold wojciech zbigniew zofia zuzanna
aleksandr aleksei alexei alla alyona anastasia anatoly andrei anton arkady artem boris dmitri dmitry
ekaterina elena evgeny fyodor galina gennady grigory igor ilya inna irina ivan katya kirill konstantin
ksenia larisa lev lyudmila maxim mikhail nadezhda natalya nikita nikolai oksana oleg olga pavel polina
roman ruslan sergei sergey stanislav svetlana tatiana tatyana timur valentin valentina valery vasily
viktor vladimir vladislav yana yaroslav yekaterina yelena yevgeny yulia yuri zhanna
bohdan halyna mykola mykhailo oleksandr oleksandra oleksii olena petro taras vasyl volodymyr yaroslava
andrea bohumil dana eva frantisek františek hana ivana jana jaroslav jiri jiří josef karel katerina
kateřina lenka lucie marketa markéta martina milan miroslav ondrej ondřej pavla petr radek tereza vaclav
václav vojtech vojtěch zdenek zdeněk
agnes andras attila balazs bence csaba eszter gabor gyorgy istvan janos jozsef katalin laszlo marton
mate nora peter reka sandor szabolcs tamas zoltan zsofia zsuzsanna
adrian alexandru andreea bogdan catalin cosmin cristina dan daniela dragos florin gheorghe ioana ion
ionut iulia mihaela mihai mirela nicolae ovidiu radu raluca razvan sorin stefania vasile
aleksandar biljana bojan borislav dejan dragan goran ivana jelena marija marko milica milos nemanja
nikola snezana stefan vesna zoran
agnieta anders anneli astrid birgitta bjorn björn britt dag eirik elin elsa emil erik espen frida gunnar
gustav hakon håkon hilde ingrid ivar jarle johan karin kari kjell knut lars leif linnea magnus mats
mikael nils ola olav ole per rune sigrid solveig stig sven terje tove trond ulf vidar astrid henrik
kasper mette mads rasmus sofie freja ida søren soren jesper morten bente lone jens torben pia
aino eero eetu elina hanna heikki jukka juha kaisa kari katja laura leena matti mikko minna niina olli
pekka riikka sanna sari seppo tapio timo tuomas tuula veera ville
achilleas alexandros anastasios andreas angeliki athanasios christos dimitra dimitrios eleni evangelos
georgios giorgos ioannis katerina konstantinos kostas maria nikolaos nikos panagiotis sotiris spyros
stavros theodora vasiliki vasilis yannis
ahmet ali arda ayse ayşe aylin berk burak can cem deniz ebru ece elif emine emre esra fatih fatma
gizem hakan hasan huseyin hüseyin ibrahim ipek irem kemal kerem leyla mehmet meltem merve murat mustafa
ozlem özlem oguz serkan sevgi selin tolga tugba ugur yasemin yusuf zehra zeynep
adebayo adaeze adeola adewale ama amara ayodele babajide bolaji chidi chiamaka chidinma chinedu chinonso
chioma chukwuemeka chinwe damilola ebere ebuka efua emeka esi femi folake folasade funke funmilayo
ifeoma ifeanyi ikenna kelechi kemi kofi kwabena kwaku kwame kwesi kojo nana ngozi nkechi nnamdi
obinna ogechi olamide olumide oluwadamilare oluwafemi oluwaseun oluwatobi oluwatoyin segun seun
tayo temitope tobi tolu tunde uchenna yaw yetunde abena akua akosua adjoa afia yaa
amani baraka imani jabari juma kamau kibet njeri otieno wanjiru wambui zawadi neema rehema
ayanda bongani lerato lindiwe mandla nomvula nandi sipho sibusiso thabo themba thandiwe zanele zodwa
abebe almaz dawit haile meron selam tesfaye yonas
aviva avi avraham batya chaim dov eitan eli ezra gideon hadas ilan itai itamar lior meir miriam moshe
naama noa ofer oren rivka ronit shai shira shlomo shoshana tamar yael yair yehuda yitzhak yosef zvi
akosua alexei alessio amadou aminata awa boubacar cheikh fatou ibrahima mamadou moussa ousmane seydou
aroha hemi kiri manaia mere nikau rangi tama wiremu
aiyana alo chenoa dakota kaya kimi nayeli tala
andile kagiso keabetswe mpho neo palesa refilwe tebogo tshepo
josé chloé zoë zoé éloïse hélène céline amélie andré françois jérôme léa noémie rené renée stéphane
jürgen jörg günter günther björn søren joão gonçalo inês martín ramón raúl sofía lucía tomás joaquín
matías nicolás iñaki íñigo begoña ángel álvaro jesús maría josé-luis juan-carlos
mateusz przemysław przemyslaw wiesław wieslaw bogusław boguslaw bronisław
dominika kinga oliwia weronika zofia maja lena julia amelia antoni filip franciszek igor ignacy kacper
mikołaj mikolaj oskar stanisław tymon wojtek
""")

AMBIGUOUS = FIRST_NAMES & _words("""
april august autumn summer winter june may dawn faith hope joy grace charity patience prudence mercy
will bill mark rose ruby pearl amber jade crystal ivy holly hazel olive violet iris lily daisy poppy willow
chase hunter mason piper taylor tyler cooper parker carter fisher baker
austin dallas houston jordan georgia victoria sydney paris london florence chelsea kent lincoln troy
india china asia africa brooklyn savannah phoenix dakota camden
rich rob sue pat art bob guy gene jack frank sunny rusty penny sandy carol noel nick dean don ray
jay lee kim long chi my an van bo dan ken min na yu ai mai hana tam lan hai nam bao hong rin ren
max miles rex neo nova sky skye rain storm wren wyatt hudson
christian mercedes angel sterling royal king prince earl duke grant chester virginia alexa jesus roman
can said hung dung thu yen jun gang ping shin per rune lone jan ram mere long
""")

NOT_NAME = _words("""
a an the and or but nor of for to in on at by with from into onto upon about as if so than then that this
these those there here where when why how what which who whom whose it its i me my mine we us our you your
he him his she her they them their is are was were be been being am do does did have has had will would
shall should can could may might must not no yes ok okay please thanks thank thankyou hello hi hey dear
regards sincerely faithfully cheers best kind warm yours truly good morning afternoon evening night day week month
year today tomorrow yesterday monday tuesday wednesday thursday friday saturday sunday january february
march april june july august september october november december christmas easter new happy merry
street st road rd avenue ave lane ln drive dr boulevard blvd close way court ct place pl terrace crescent
gardens grove square sq park parkway highway hill walk row mews rise view green circle loop
bank banking branch office team support service services customer customers client account accounts card
cards credit debit visa mastercard amex gold silver platinum premier rewards online mobile app pay
payment payments transfer loan mortgage savings current isa fund group ltd limited inc llc plc corp
company co department dept centre center university college school hospital clinic station airport
street north south east west central national international royal mail post city town county
apple google microsoft amazon paypal netflix uber
mr mrs ms miss mx dr prof sir dame lord lady madam sr jr
english french german spanish chinese british american european
garden hall house centre church chapel cathedral abbey museum gallery theatre theater cinema hotel inn
restaurant cafe bar pub club market mall shop store stores beach lake river bridge tower castle palace
stadium arena valley island bay harbour harbor lodge farm cottage manor estate library station airport
""")

COMMON = _words("""
a an the and or but nor of for to in on at by with from into about as if so than then that this these
those there here where when why how what which who it its i me my we us our you your he him his she her
they them their is are was were be been being am do does did done have has had will would shall should
can could may might must not no yes yeah yep nope ok okay please thanks thank hello hi hey sorry
just also only still already really very quite too now soon later again here calling call calls speaking
speak talking talk from the with regarding about my account card bank number phone email address
and but so because i'm im i've ive it's its that's thats what's whats looking trying wanting want wanted
need needed like would could going gonna wanna get got make made help helping ringing ring phoning
checking check asking ask wondering hoping happy glad sure fine well good great not all any some one
two three four five six seven eight nine ten first last new old mr mrs ms miss dr sir madam
again actually basically um uh er erm hmm oh ah well right alright like
""")

SURNAME_FIRST = _words("""
nguyen tran pham huynh phan vu vo dang bui duong ngo
wang zhang liu chen yang huang zhao zhou xu zhu guo luo liang song zheng xie tang deng feng
kim choi jung kang cho yoon jang shin
sato suzuki takahashi tanaka watanabe ito yamamoto nakamura kobayashi kato yoshida yamada sasaki yamaguchi
matsumoto inoue kimura hayashi shimizu
""")

CITIES = _words("""
london manchester birmingham leeds liverpool sheffield bristol newcastle nottingham leicester coventry
bradford hull stoke wolverhampton plymouth southampton portsmouth derby reading luton brighton bournemouth
norwich oxford cambridge york bath exeter gloucester cheltenham swindon milton peterborough ipswich colchester
chelmsford canterbury maidstone guildford slough watford croydon bromley harrow ealing hackney camden
islington chelsea kensington westminster greenwich wimbledon richmond sunderland middlesbrough durham carlisle
lancaster preston blackpool bolton wigan stockport salford warrington chester crewe wrexham cardiff swansea
newport bangor edinburgh glasgow aberdeen dundee inverness stirling perth belfast derry lisburn dublin cork
limerick galway waterford whitby harrogate scarborough doncaster rotherham barnsley wakefield huddersfield
halifax lincoln grimsby worcester hereford shrewsbury telford stafford northampton bedford stevenage
basingstoke winchester salisbury taunton truro bath
boston chicago houston phoenix philadelphia dallas austin denver seattle portland atlanta miami orlando tampa
detroit cleveland columbus cincinnati pittsburgh baltimore washington nashville memphis louisville charlotte
raleigh richmond minneapolis milwaukee omaha kansas louis indianapolis sacramento oakland fresno albuquerque
tucson vegas honolulu anchorage springfield newark buffalo rochester albany hartford providence
berlin munich hamburg cologne frankfurt stuttgart paris lyon marseille toulouse nice madrid barcelona valencia
seville lisbon porto rome milan naples turin florence amsterdam rotterdam brussels antwerp vienna zurich geneva
warsaw krakow prague budapest stockholm oslo copenhagen helsinki athens istanbul toronto montreal vancouver
sydney melbourne brisbane auckland wellington mumbai delhi bangalore chennai kolkata karachi lahore dubai
""")
